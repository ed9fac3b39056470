"""Shadow releases: the whole evaluation of a release (steps on a timer, every check, the verdicts),
with the router left alone.

A team that does not trust Sluice yet runs it in shadow first: `mode: shadow` on a service or a
policy, or `?mode=shadow` on one deploy notification. A shadow release

- never calls the router's `set_weights`: where a live release would set weights, it reads them
  (`get_weights`) and records what it saw (`weights_observed` events, `observed_weights`), and the
  step's clock starts then, so step progress never waits on weights it did not set;
- judges the traffic the candidate really gets (a team shifting by hand, or a version already at
  100%): the judge reads `Release.traffic_weights()`, the observed weights;
- owns nothing: it does not take the service's `active` pointer, so it neither supersedes a live
  release nor is superseded by one, and its verdict never changes the service's stable version;
- sends hooks marked `shadow: true` (or none, `shadow_hooks: none`); hooks whose call is an effect
  (the CircleCI kinds: approving a held job, cancelling a workflow, triggering a pipeline) do not
  fire for it unless the hook says `shadow: true`.

Shadow releases of one version are one release (duplicates are counted on it), separate from a live
release of the same version, which may start while the shadow one runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from app.context import Context
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.core.models import Event, Release, ReleaseMode, ShadowHooks
from integrations.routers.interface import RouterError

log = logging.getLogger("sluice.shadow")

MODES: tuple[str, ...] = ("live", "shadow")


class ModeConflict(ValueError):
    """A notification asked for a live release of a service (or policy) configured as shadow."""


def resolve_mode(svc: ServiceConfig, policy: PolicyConfig, requested: str | None) -> tuple[ReleaseMode, ShadowHooks]:
    """The release's mode and what its hooks do in shadow. Shadow if the notification, the service
    or the policy says so; a notification cannot make a release of a shadow service live (the
    configuration is where a team decides Sluice may move traffic)."""
    configured = "shadow" if "shadow" in (svc.mode, policy.mode) else "live"
    if requested is not None and requested not in MODES:
        raise ModeConflict(f"mode must be one of {', '.join(MODES)}, not {requested!r}")
    if requested == "live" and configured == "shadow":
        where = f"service {svc.name!r}" if svc.mode == "shadow" else f"policy {policy.name!r}"
        raise ModeConflict(
            f"{where} is configured with `mode: shadow`, so Sluice does not move its traffic; "
            "remove `mode: shadow` from the configuration to release it for real"
        )
    mode: ReleaseMode = "shadow" if "shadow" in (configured, requested) else "live"
    hooks: ShadowHooks = svc.shadow_hooks or policy.shadow_hooks or "marked"
    return mode, hooks


def source_from_weights(weights: dict[str, int], version: str) -> str | None:
    """The stable version of a shadow release when only the router can tell: the one other version
    with traffic (a team shifting by hand has two live versions, the candidate being one)."""
    others = [v for v, w in weights.items() if w > 0 and v != version]
    return others[0] if len(others) == 1 else None


def read_weights(ctx: Context, release: Release) -> Release:
    """The shadow release with the router's weights now (recorded with the next decision), so the
    judge weighs the traffic the candidate really has. Unchanged if the router cannot be read."""
    try:
        app, svc, _ = ctx.locate(release)
        weights = ctx.router(app).get_weights(svc)
    except (LookupError, RouterError) as exc:
        log.warning("shadow release %s: could not read the router's weights: %s", release.id, exc)
        return release
    return release.model_copy(update={"observed_weights": weights})


def observe_instead(
    ctx: Context,
    release: Release,
    router: Any,
    svc: ServiceConfig,
    mark: Callable[[Any, ServiceConfig], dict[str, Any] | None],
) -> Release:
    """A shadow release's "act": where a live release sets weights, read them and record what was
    seen. Confirms at once (`weights_applied`), so the step's clock starts now and nothing waits for
    weights it will never set. `mark` reads the router's counters, which only reads."""
    now = time.time()
    try:
        seen: dict[str, int] | None = router.get_weights(svc)
        message = "shadow: traffic not moved; the router has " + describe(seen or {})
    except RouterError as exc:
        seen, message = release.observed_weights, f"shadow: traffic not moved; could not read the router: {exc}"
    update: dict[str, Any] = {"weights_applied": True, "observed_weights": seen}
    if not release.terminal:
        judge = release.judge.model_copy(update={"router_mark": mark(router, svc)})
        if release.step == 0:
            judge.first_traffic_at = now
        update.update(step_started_at=now, judge=judge)
    done = release.model_copy(update=update)
    event = Event(
        at=now,
        type="weights_observed",
        message=message,
        data={"weights": seen, "would_set": release.desired_weights, "shadow": True},
    )
    ctx.store.commit(
        done,
        events=[event],
        previous_seq=release.seq if release.terminal else None,
        next_tick_at=None if release.terminal else release.next_tick_at,
    )
    return done


def describe(weights: dict[str, int]) -> str:
    if not weights:
        return "no weights"
    return ", ".join(f"{v}: {w}%" for v, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def hook_fires(hook: Any, acts: bool, release: Release) -> bool:
    """Whether a hook fires for this release: always for a live one; for a shadow one, per the
    hook's `shadow` setting, by default yes for notifications and no for hooks that act (CircleCI)."""
    if not release.shadow:
        return True
    if release.shadow_hooks == "none":
        return False
    explicit = getattr(hook, "shadow", None)
    return bool(explicit) if explicit is not None else not acts


def mode_before_source(svc: ServiceConfig, policies: list[PolicyConfig], requested: str | None) -> ReleaseMode | None:
    """The mode as far as it is known before the stable version (which picks the policy by semver
    bump): None when the service's policies disagree. Refuses a mode no release can have."""
    if requested is not None and requested not in MODES:
        raise ModeConflict(f"mode must be one of {', '.join(MODES)}, not {requested!r}")
    if requested == "live":
        if svc.mode == "shadow" or all(p.mode == "shadow" for p in policies):
            resolve_mode(svc, policies[0], requested)  # raises, saying why
        return "live" if all(p.mode == "live" for p in policies) else None
    if requested == "shadow" or svc.mode == "shadow" or all(p.mode == "shadow" for p in policies):
        return "shadow"
    return "live" if all(p.mode == "live" for p in policies) else None
