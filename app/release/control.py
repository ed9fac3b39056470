"""Manual steering of a release: pause, resume, promote, abort (API and CLI)."""

from __future__ import annotations

import time

from app.context import Context, UnknownService
from app.core import bake
from app.core.decide import fail_back
from app.core.models import Decision, Release
from app.release import handoff
from app.release.engine import apply_weights, commit_decision
from app.store import LeaseLost
from app.telemetry.logs import release_context

ACTIONS = ("pause", "resume", "promote", "abort")
_ALLOWED_FROM = {
    "pause": {"running"},
    "resume": {"paused"},
    "promote": {"pending", "running", "paused", "baking"},
    "abort": {"pending", "running", "paused", "baking"},
}


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def control(
    ctx: Context, release_id: str, action: str, actor: str = "api", reason: str = "", wait: float | None = None
) -> Release:
    """Record the action and make the router show it: in the request, or (SLUICE_WEB_STEERS=false)
    by a worker, waited for up to `wait` seconds (app/release/handoff.py). The release returned has
    `weights_applied` false when the worker has not confirmed it yet."""
    steers = handoff.steers_in_request()
    if action not in ACTIONS:
        raise ControlError(404, f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    # Wait briefly for a running tick to finish rather than racing it.
    with release_context(release_id), ctx.store.release_lock(release_id, ttl=30, wait=10) as acquired:
        if not acquired:
            raise ControlError(409, "the release is busy (a tick is running); try again in a few seconds")
        release = ctx.store.get(release_id)
        if release is None:
            raise ControlError(404, f"no release {release_id!r}; list releases with GET /api/v1/releases")
        if release.state not in _ALLOWED_FROM[action]:
            raise ControlError(409, f"cannot {action} a release that is {release.state}")
        owner = ctx.store.active_release(release.application, release.service)
        if action in ("promote", "resume") and owner != release.id and not release.shadow:
            # Superseded but not yet retired (see workers/tick.py): it must not take traffic back.
            by = f"release {owner}" if owner else "a newer release"
            raise ControlError(409, f"cannot {action}: {by} has replaced this release; abort it instead")
        why = f"{action} by {actor}" + (f": {reason}" if reason else "")  # who, always: the audit trail
        if action == "abort" or release.state == "baking":  # a bake ends: the new version stays stable
            decision = fail_back(release, why, kind="abort")
        else:
            weights = release.weights_for(100) if action == "promote" else None
            decision = Decision(
                kind=action,
                weights=weights,
                reason=why,
                consecutive_failures=release.consecutive_failures,
                bake_until=_bake_until(ctx, release) if action == "promote" else None,
            )
        try:
            release = commit_decision(ctx, release, decision, time.time())
            if steers:
                return apply_weights(ctx, release)
        except LeaseLost:  # the lock ran out while we worked, and a tick may have moved on
            raise ControlError(409, "the release changed while this action ran; try again") from None
    # Out of the lock: the worker's tick takes it.
    if release.weights_applied:  # pause and resume change no weights
        return release
    handoff.hand_over(ctx, release)
    return handoff.wait_for(ctx, release, handoff.applied, wait)


def _bake_until(ctx: Context, release: Release) -> float | None:
    """A promotion by hand bakes as one by the steps would (docs/bake.md)."""
    try:
        policy = ctx.locate(release)[2]
    except UnknownService:
        return None
    return bake.bake_until(release, policy, time.time())
