"""Router drift: the router no longer shows the weights Sluice confirmed for a running release.

Sluice confirms a step's weights once, when it sets them (app/release/engine.py `apply_weights`). But
a router can lose them afterwards: an HAProxy reload resets its runtime weights to the
configuration file's (the stable version's 100%), and an operator or another tool may change
them by hand. Without a check, the release would go on judging a candidate that gets no
traffic, or a rolled-back one that still gets some. So every tick of a running release reads
the router's weights (one call) and, when they differ from the desired ones, sets them again
and records a `weights_drifted` event saying what it found.
"""

from __future__ import annotations

import logging
import time

from app.context import Context, UnknownService
from app.core.models import Event, Release
from integrations.routers.interface import RouterError

log = logging.getLogger("sluice.drift")


def drifted(seen: dict[str, int], wanted: dict[str, int]) -> bool:
    """Whether the router's percents differ from the wanted ones (a version not listed wants 0)."""
    return any(seen.get(v, 0) != wanted.get(v, 0) for v in set(seen) | set(wanted))


def restore_drifted_weights(ctx: Context, release: Release) -> Release:
    """Re-apply a running release's confirmed weights if the router lost them; else change nothing.

    A router that cannot be read is left alone (the observe step reports its health). A
    re-apply that fails marks the weights unconfirmed, so the next tick repairs them through
    `apply_weights` like any unconfirmed decision. The tick's schedule is not touched: the tick
    running now was scheduled with the decision it evaluates."""
    # A baking release still owns its service's traffic (docs/bake.md): an HAProxy reload mid-bake is repaired too.
    if release.state not in ("running", "baking") or not release.weights_applied or release.shadow:
        return release  # a shadow release never sets weights: what the router shows is what it judges
    try:
        app, svc, _policy = ctx.locate(release)
    except UnknownService:
        return release  # the tick's decide fails such a release
    router = ctx.router(app)
    try:
        seen = router.get_weights(svc)
    except RouterError as exc:
        log.warning("could not read the router's weights: %s", exc, extra={"release_id": release.id})
        return release
    wanted = release.desired_weights
    if not drifted(seen, wanted):
        return release
    now = time.time()
    found = _describe(seen)
    try:
        readback = router.set_weights(svc, wanted)
    except RouterError as exc:
        unconfirmed = release.model_copy(update={"weights_applied": False})
        message = f"router weights drifted: found {found}, wanted {_describe(wanted)}; re-applying failed: {exc}"
        ctx.store.commit(
            unconfirmed,
            events=[Event(at=now, type="weights_drifted", message=message, data={"found": seen, "wanted": wanted})],
        )
        log.warning("release %s: %s", release.id, message, extra={"release_id": release.id})
        return unconfirmed
    message = f"router weights drifted: found {found}, wanted {_describe(wanted)}; re-applied"
    ctx.store.commit(
        release,
        events=[
            Event(
                at=now,
                type="weights_drifted",
                message=message,
                data={"found": seen, "wanted": wanted, "weights": readback},
            )
        ],
    )
    log.warning("release %s: %s", release.id, message, extra={"release_id": release.id})
    return release


def _describe(weights: dict[str, int]) -> str:
    return ", ".join(f"{v}: {w}%" for v, w in sorted(weights.items(), key=lambda kv: -kv[1])) or "no servers"
