"""RQ entry point for a release's replicas work once it ended (app/release/scaling.py `finish`): put back
what Sluice scaled after a failure, scale the old version down after promotion. Scheduled through
the `due` set (`scale:<release>`), so a worker that dies mid-way leaves it due again."""

from __future__ import annotations

import time

from app.context import get_context
from app.release.scaling import finish
from app.telemetry.logs import release_context


def run_scale(release_id: str) -> str:
    ctx = get_context()
    with release_context(release_id):
        return finish(ctx, release_id, time.time())
