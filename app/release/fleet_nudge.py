"""A member release that finishes brings its fleet's next look forward (app/release/fleets.py), so the
next wave starts within a scheduler poll rather than at the fleet's backstop look."""

from __future__ import annotations

import time

from app.context import Context
from app.core.models import Release


def nudge_fleet(ctx: Context, before: Release, after: Release) -> None:
    if after.fleet and after.terminal and not before.terminal:
        ctx.store.fleets.look_soon(after.fleet, time.time())
