"""The imperative shell around `decide`: record a decision, then make the router match it.

Order matters for crash safety. A decision is committed first (new state, evaluations,
events, hook deliveries, `weights_applied=False`, a backstop tick), then the router is
changed, then `weights_applied=True` is recorded. A crash anywhere in between leaves a
release whose next tick re-applies `desired_weights`: idempotent, so nothing is lost or
done twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from app.config_file.schema import ApplicationConfig
from app.context import Context, UnknownService
from app.core import bake, known_bad
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.core.copies import deep_copy
from app.core.decide import fail_back
from app.core.judge.judging import looks_broken
from app.core.known_bad import ROLLBACK_TRIGGER, KnownBad
from app.core.models import Decision, Event, Release
from app.release import shadow
from app.release.bake import revert_deliveries
from app.release.fleet_nudge import nudge_fleet
from app.release.hooks import plan_deliveries
from app.release.route_shape import apply_shape, describe_shape, route_shape
from app.release.scaling import scale_due
from app.telemetry import delivery, metrics
from integrations.routers.interface import RouterError

log = logging.getLogger("sluice.engine")

ROUTER_RETRY_SECONDS = 1.0
_EVENT_FOR_KIND = {
    "start": "started",
    "advance": "step_passed",
    "promote": "succeeded",
    "fail": "failed",
    "abort": "aborted",
    "pause": "paused",
    "resume": "resumed",
    "revert": "reverted",
    "baked": "baked",
}
_STATE_FOR_KIND = {
    "start": "running",
    "advance": "running",
    "resume": "running",
    "pause": "paused",
    "promote": "succeeded",
    "fail": "failed",
    "abort": "aborted",
    "revert": "failed",
    "baked": "succeeded",
}


def _route(ctx: Context, release: Release) -> tuple[ApplicationConfig, ServiceConfig]:
    """The release's application and service (its router), even if its policy left the configuration."""
    app = ctx.config.application(release.application)
    svc = app.service(release.service) if app else None
    if app is None or svc is None:
        raise UnknownService(
            f"service {release.service!r} of application {release.application!r} is not in the configuration"
        )
    return app, svc


def _policy(ctx: Context, release: Release) -> PolicyConfig | None:
    try:
        return ctx.locate(release)[2]
    except UnknownService:
        return None


# A candidate that looks broken is looked at again after half the interval, but not sooner than this.
SOONEST_LOOK = 0.5


def _interval(ctx: Context, release: Release) -> float:
    try:
        return ctx.locate(release)[2].interval
    except UnknownService:
        # The policy (or service) left the configuration: tick soon, and the tick fails the release.
        return ROUTER_RETRY_SECONDS


def next_tick_at(ctx: Context, release: Release, now: float, soon: bool = False) -> float | None:
    """When a release (as just decided) is next ticked: its policy's interval while it runs (half
    of it, `soon`, when the candidate looks broken but the evidence is not in yet); soon if its
    router has not confirmed its weights (a backstop, should the act after the commit die); else
    never. Committed with the decision, so a crash after the commit still leaves a tick."""
    if not release.terminal and release.state != "paused":
        interval = _interval(ctx, release)
        return now + (max(SOONEST_LOOK, interval / 2) if soon and interval > SOONEST_LOOK else interval)
    if not release.weights_applied:
        return now + ROUTER_RETRY_SECONDS
    return None


def decided(release: Release, decision: Decision, now: float) -> Release:
    """The release after `decision`, before anything is recorded or routed: the one place the
    decision's effect on the release's state is spelled (commit_decision records it; replay
    re-runs past releases with it)."""
    new = deep_copy(release)  # model_copy(deep=True), without deepcopy's cost over the judge's histograms
    new.seq += 1
    new.updated_at = now
    new.consecutive_failures = decision.consecutive_failures
    new.no_data_since = decision.no_data_since
    new.unready_since = decision.unready_since
    if decision.judge is not None:
        new.judge = deep_copy(decision.judge)
    kind = decision.kind
    if kind in _STATE_FOR_KIND:
        new.state = _STATE_FOR_KIND[kind]  # type: ignore[assignment]
        new.reason = decision.reason
    if kind in ("start", "advance"):
        new.step = decision.step if decision.step is not None else new.step
        new.step_started_at = now
        new.consecutive_failures = 0
    if kind == "resume":
        new.resumed_step = new.step
    if new.terminal:
        new.finished_at = now
    bake.enter(new, decision, now)  # a promotion with a bake: baking, not finished (app/core/bake.py)
    if kind == "hold":
        # The latest words, countdown included: only the hold *event* is once per topic
        # (commit_decision), or "13s left" stands for the whole wait.
        new.reason = decision.reason
    if decision.weights is not None and decision.weights != release.desired_weights:
        new.desired_weights = dict(decision.weights)
        new.weights_applied = False
    return new


def commit_decision(ctx: Context, release: Release, decision: Decision, now: float) -> Release:
    """Record a decision (atomically) and return the new release. Does not touch the router."""
    new = decided(release, decision, now)
    policy = _policy(ctx, release)
    if route_shape(policy, new) != route_shape(policy, release):
        new.weights_applied = False  # the step starts or ends a segment or mirror: the router must change
    events: list[Event] = []
    deliveries = []
    kind = decision.kind
    # A shadow release's verdict moves nothing: the service's stable version stays what it was.
    stable = new.target_version if kind == "promote" and not new.shadow else bake.stable_after(new, kind)
    if new.terminal:
        new.next_tick_at = None
    if kind == "hold" and _topic(decision.reason) != _topic(release.reason):
        events.append(Event(at=now, type="hold", message=decision.reason))

    if kind in _EVENT_FOR_KIND:
        event_type = _EVENT_FOR_KIND[kind]
        data: dict = {"step": new.step + 1}
        if decision.weights is not None:
            data["weights"] = decision.weights
        events.append(Event(at=now, type=event_type, message=decision.reason, data=data))
        if kind == "advance":
            # The hook for a passed step carries the step that passed, not the one starting.
            passed = new.model_copy(update={"step": release.step})
            deliveries += plan_deliveries(ctx.config, passed, "step_passed", now)
        elif event_type in ("started", "succeeded", "failed", "aborted"):
            hook_event = _hook_event(new, event_type)
            if hook_event is not None:
                deliveries += plan_deliveries(ctx.config, new, hook_event, now)
        elif kind == "revert":  # the bake's revert is a rollback to its hooks (app/release/bake.py)
            deliveries += revert_deliveries(ctx.config, new, now)
    if decision.approval is not None:
        # Asking for an approval (e.g. Slack buttons): once per gate, whatever the hold's reason says.
        wanted = plan_deliveries(ctx.config, new, "approval_requested", now, gate=decision.approval.model_dump())
        deliveries += [d for d in wanted if d.id not in release.hooks]
    new.hooks = new.hooks + [d.id for d in deliveries if d.id not in new.hooks]

    soon = decision.kind == "hold" and looks_broken(decision.results)
    next_tick = new.next_tick_at = next_tick_at(ctx, new, now, soon=soon)
    ctx.store.commit(
        new,
        results=decision.results,
        events=events,
        deliveries=deliveries,
        next_tick_at=next_tick,
        previous_seq=release.seq,
        stable_version=stable,
        known_bad=_known_bad(new, kind, decision, now),
        also_due=scale_due(ctx, release, new, now),  # replicas to put back or scale down (app/release/scaling.py)
    )
    nudge_fleet(ctx, release, new)  # a member's end: its fleet looks at its wave now (docs/fleets.md)
    metrics.record_decision(ctx.store, release, new, kind, decision.results)
    log.info(
        "release %s: %s (%s)",
        new.id,
        kind,
        decision.reason,
        extra={"release_id": new.id, "decision": kind, "state": new.state},
    )
    return new


def _hook_event(release: Release, event_type: str) -> str | None:
    """The hook event of a release event: a rollback sends one `rollback` when it is done (and
    `failed` if it could not be), nothing when it starts."""
    if release.trigger != ROLLBACK_TRIGGER:
        return event_type
    return {"started": None, "succeeded": "rollback"}.get(event_type, event_type)


def _known_bad(release: Release, kind: str, decision: Decision, now: float) -> KnownBad | None:
    """The version this decision shows to be bad, recorded with it (app/core/known_bad.py has the rule).
    A shadow release's verdict is advice: it blocks no later release of the version."""
    if release.shadow:
        return None
    if kind == "fail":
        return known_bad.for_failure(release, decision.results, now)
    if kind == "promote" and release.trigger == ROLLBACK_TRIGGER:
        return known_bad.for_rollback(release, now)
    if kind == "revert":
        return bake.known_bad_for_revert(release, decision.results, now)
    return None


def apply_weights(ctx: Context, release: Release) -> Release:
    """Make the router show `release.desired_weights`, verify, record. Safe to call again."""
    if release.weights_applied:
        return release
    now = time.time()
    try:
        app, svc = _route(ctx, release)
    except UnknownService as exc:
        return _router_failed(ctx, release, RouterError(f"configuration: {exc}", retryable=False), now)
    if release.shadow:  # never changes the router: reads it instead (app/release/shadow.py)
        return shadow.observe_instead(ctx, release, ctx.router(app), svc, _router_mark)
    if release.terminal:
        owner = ctx.store.active_release(release.application, release.service)
        if owner not in (None, release.id):
            # A newer release of this service owns its traffic now; restoring ours would undo it.
            done = release.model_copy(update={"weights_applied": True})
            ctx.store.commit(
                done,
                events=[Event(at=now, type="weights_skipped", message=f"release {owner} now routes this service")],
                previous_seq=release.seq,
            )
            return done
    router = ctx.router(app)
    try:
        readback = router.set_weights(svc, release.desired_weights)
        apply_shape(router, svc, _policy(ctx, release), release)
    except RouterError as exc:
        return _router_failed(ctx, release, exc, now)
    update: dict[str, Any] = {"weights_applied": True}
    if not release.terminal:
        # The step begins when its weights are in place, not when they were decided: a crash in
        # between must not shorten the step. The router's counters now are where its evidence
        # starts.
        confirmed = time.time()
        judge = release.judge.model_copy(update={"router_mark": _router_mark(router, svc)})
        if release.step == 0:
            judge.first_traffic_at = confirmed
        update.update(step_started_at=confirmed, judge=judge)
    done = release.model_copy(update=update)
    event = Event(
        at=time.time(),
        type="weights_set",
        message=_describe(readback) + describe_shape(_policy(ctx, release), release),
        data={"weights": readback, "requested": release.desired_weights},
    )
    # Terminal: drop the backstop tick. Otherwise keep the scheduled evaluation tick as is.
    ctx.store.commit(
        done,
        events=[event],
        previous_seq=release.seq if release.terminal else None,
        next_tick_at=None if release.terminal else release.next_tick_at,
    )
    delivery.record_restored(ctx.store, done, event.at)  # if these weights undid a bad version
    return done


def _router_mark(router: Any, service: ServiceConfig) -> dict[str, Any] | None:
    """The router's per-version counters (a router that can count them: HAProxy), or None."""
    counters = getattr(router, "counters", None)
    if counters is None:
        return None
    try:
        mark = counters(service)
    except RouterError as exc:
        log.warning("could not read the router's counters: %s", exc)
        return None
    return mark if isinstance(mark, dict) else None


def _router_failed(ctx: Context, release: Release, exc: RouterError, now: float) -> Release:
    log.warning("release %s: router error: %s", release.id, exc, extra={"release_id": release.id})
    event = Event(
        at=now,
        type="router_error",
        message=str(exc),
        data={"requested": release.desired_weights, "retryable": exc.retryable},
    )
    if exc.retryable or release.terminal:
        retry_at = now + ROUTER_RETRY_SECONDS if exc.retryable else None
        ctx.store.commit(release, events=[event], next_tick_at=retry_at, previous_seq=None if retry_at else release.seq)
        return release
    # The router cannot take this release's weights (e.g. no server for the candidate):
    # fail it and put traffic back on stable, which the router can do.
    ctx.store.commit(release, events=[event])
    failed = commit_decision(ctx, release, fail_back(release, f"router: {exc}"), now)
    return apply_weights(ctx, failed)


def _topic(reason: str | None) -> str:
    """What a hold is about ("step in progress", "holding"...), without its changing countdown,
    so that a step's hold is one event rather than one per tick."""
    return (reason or "").split(":", 1)[0]


def _describe(weights: dict[str, int]) -> str:
    return ", ".join(f"{v}: {w}%" for v, w in sorted(weights.items(), key=lambda kv: -kv[1]))
