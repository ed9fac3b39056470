"""What a fleet does to its members and to CI when it ends: abort the releases still in flight, roll
back (or hold) the applications that already released the version, and tell CI once.

Each effect is safe to redo: an abort of a finished release is refused and skipped, a rollback is
asked only of an application whose stable version is still the fleet's, and the fleet's hook
deliveries have ids derived from (fleet, event, hook), stored once (SET NX).
"""

from __future__ import annotations

import contextlib
import logging
import time

from app.context import Context
from app.core.fleet import Fleet, event, released
from app.core.models import Delivery, Event, Release
from app.release.control import ControlError, control
from app.release.hooks import plan_deliveries
from app.release.rollback import RollbackError, rollback

log = logging.getLogger("sluice.fleets")

# The hook kinds told once per fleet (at its end) rather than by each member release: a CircleCI
# workflow has one held approval job, whichever applications the version goes to.
FLEET_ONCE_PREFIX = "circleci"
_HOOK_EVENT = {"succeeded": "succeeded", "aborted": "aborted"}  # every other end is a failure


def abort_in_flight(ctx: Context, fleet: Fleet, why: str) -> list[str]:
    """Abort the fleet's member releases that have not finished; returns their ids."""
    aborted = []
    for release in ctx.store.get_many(fleet.member_ids()):
        if release.terminal:
            continue
        with contextlib.suppress(ControlError):  # finished meanwhile, or busy: its own tick sees the fleet
            control(ctx, release.id, "abort", actor="sluice", reason=f"fleet {fleet.id} stopped: {why}", wait=0)
            aborted.append(release.id)
    return aborted


def roll_back_released(ctx: Context, fleet: Fleet) -> tuple[dict[str, str], list[Event]]:
    """Put the previous version back in every application where a member released the fleet's version
    and it is still the stable one. Returns (application -> rollback release id, events)."""
    done, events = dict(fleet.rollbacks), []
    for release in ctx.store.get_many(fleet.member_ids()):
        app = release.application
        if app in done or not released(release):
            continue
        if ctx.store.stable_version(app, release.service) != fleet.version:
            continue  # already rolled back (by this fleet before a crash, or by someone)
        now = time.time()
        try:
            why = f"fleet {fleet.name} stopped at wave {fleet.wave + 1}"
            back = rollback(ctx, release.service, app, actor=f"fleet:{fleet.id}", reason=why)
        except RollbackError as exc:
            events.append(event(now, "rollback_failed", f"{app}: could not roll back: {exc}", application=app))
            continue
        done[app] = back.id
        events.append(event(now, "rolled_back", f"{app}: {back.state}, back on {back.target_version}", release=back.id))
    return done, events


def hook_carrier(ctx: Context, fleet: Fleet) -> Release | None:
    """A release-shaped view of the fleet for its hooks' payloads: the fleet's id, CI context, state and
    reason, and the versions of its first member (the version every application goes back to)."""
    first = next(iter(ctx.store.get_many(fleet.member_ids()[:1])), None)
    if first is None:
        return None
    state = "succeeded" if fleet.state == "succeeded" else "aborted" if fleet.state == "aborted" else "failed"
    return first.model_copy(
        update={
            "id": fleet.id,
            "application": ",".join(a for w in fleet.waves for a in w.applications),
            "state": state,
            "reason": fleet.reason,
            "ci": fleet.ci,
            "fleet": None,
            "hooks": [],
            "trigger": fleet.trigger,
        }
    )


def fleet_deliveries(ctx: Context, fleet: Fleet, now: float) -> list[Delivery]:
    """The fleet's own deliveries when it ends: the CircleCI hooks its members did not send."""
    carrier = hook_carrier(ctx, fleet)
    if carrier is None:
        return []
    hook_event = _HOOK_EVENT.get(fleet.state, "failed")
    planned = plan_deliveries(ctx.config, carrier, hook_event, now)
    return [d for d in planned if d.type.startswith(FLEET_ONCE_PREFIX) and d.id not in fleet.hooks]
