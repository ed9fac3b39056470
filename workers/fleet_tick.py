"""RQ entry point of a fleet's look at its waves (app/release/fleets.py `advance`)."""

from __future__ import annotations

import logging

from app.context import get_context
from app.release.fleets import advance

log = logging.getLogger("sluice.fleets")


def run_fleet_tick(fleet_id: str) -> str:
    outcome = advance(get_context(), fleet_id)
    log.info("fleet %s: %s", fleet_id, outcome, extra={"fleet": fleet_id})
    return outcome
