"""The release tick: load, observe, decide, record, act, schedule.

A tick carries the `seq` it was scheduled for. Under the per-release lock, a tick whose
seq is no longer the release's (a duplicate, or a late one) does nothing.
"""

from __future__ import annotations

import logging
import time

from app import metrics
from app.context import Context, UnknownService, get_context
from app.decide import decide
from app.engine import apply_weights, commit_decision
from app.intake import claim_service
from app.logs import release_context
from app.models import Decision, Event, Observations, Release
from integrations.prometheus.batch import prime_batch
from integrations.prometheus.observe import observe_checks, observe_step_requests
from integrations.routing import RouterError

log = logging.getLogger("sluice.tick")
LOCK_TTL = 60.0


def run_tick(release_id: str, seq: int) -> str:
    """RQ entry point. Returns what happened, for the job's result and the logs."""
    ctx = get_context()
    with release_context(release_id), metrics.timed_tick(ctx.store, release_id, seq):
        outcome = tick(ctx, release_id, seq)
    metrics.count_tick(ctx.store, _tick_result(outcome))
    return outcome


def _tick_result(outcome: str) -> str:
    head = outcome.split(":", 1)[0].strip()
    return head if head in ("stale", "busy", "gone") else ("idle" if "nothing to evaluate" in outcome else "decided")


def tick(ctx: Context, release_id: str, seq: int) -> str:
    with ctx.store.release_lock(release_id, ttl=LOCK_TTL) as acquired:
        if not acquired:
            return "busy: another tick holds this release"
        release = ctx.store.get(release_id)
        if release is None:
            ctx.store.unschedule_tick(release_id, seq)
            return "gone"
        if release.seq != seq:
            return f"stale: release is at seq {release.seq}, this tick was for {seq}"
        owner = ctx.store.active_release(release.application, release.service)
        if release.state == "pending" and owner != release.id:
            owner = claim_service(ctx, release)  # the intake died before it could
        if not release.terminal and owner != release.id:
            return _retire(ctx, release, owner)
        release = apply_weights(ctx, release)  # repair a decision whose effect was not confirmed
        if release.terminal or release.state == "paused":
            if release.weights_applied:
                ctx.store.unschedule_tick(release.id, release.seq)
            return f"{release.state}: nothing to evaluate"
        if not release.weights_applied:
            return "router not yet updated; retrying"
        now = time.time()
        try:
            observations = observe(ctx, release, now)
            _, _, policy = ctx.locate(release)
            decision = decide(release, policy, observations, now)
        except UnknownService as exc:
            decision = Decision(
                kind="fail",
                weights=release.stable_weights(),
                reason=f"configuration: {exc}",
                consecutive_failures=release.consecutive_failures,
            )
        release = commit_decision(ctx, release, decision, now)
        apply_weights(ctx, release)
        return f"{decision.kind}: {decision.reason}"


def _retire(ctx: Context, release: Release, owner: str | None) -> str:
    """This release no longer owns its service's traffic (a newer release took the service, and the
    supersede could not abort this one because a tick held its lock). Abort it without touching the
    router, which the newer release steers (or steered, and then put on its own final weights)."""
    by = f"release {owner}" if owner else "a newer release"
    now = time.time()
    retired = commit_decision(
        ctx,
        release,
        Decision(
            kind="abort",
            weights=release.stable_weights(),
            reason=f"superseded by {by}",
            consecutive_failures=release.consecutive_failures,
        ),
        now,
    )
    if not retired.weights_applied:
        ctx.store.commit(
            retired.model_copy(update={"weights_applied": True}),
            events=[Event(at=now, type="weights_skipped", message=f"{by} now routes this service")],
            previous_seq=retired.seq,
        )
    return f"abort: superseded by {by}"


def observe(ctx: Context, release: Release, now: float) -> Observations:
    """Ask Prometheus and the router about the candidate. Errors become 'no data', never exceptions."""
    app, svc, policy = ctx.locate(release)
    obs = Observations(at=now)
    if release.state != "running":
        return obs
    obs.checks = observe_checks(policy, ctx.config.prometheus, ctx.config.metrics, release, ctx.prometheus, now)
    step = policy.steps[release.step]
    if step.requests is not None and release.step_started_at is not None:
        obs.step_requests = observe_step_requests(
            ctx.config.prometheus, release, ctx.prometheus, now, since=release.step_started_at
        )
    try:
        health = ctx.router(app).health(svc, release.target_version)
        obs.candidate_healthy, obs.health_detail = health.healthy, health.detail
    except RouterError as exc:
        obs.candidate_healthy, obs.health_detail = None, f"router could not tell: {exc}"
    if app.cluster is not None:  # Kubernetes: restarts and a failed rollout, whatever the router
        from integrations.kubernetes.health import observe_cluster

        observe_cluster(ctx, app, svc, release, obs)
    return obs


def run_ticks(batch: list[tuple[str, int]]) -> list[str]:
    """RQ entry point for several due ticks in one job. A job costs RQ dozens of Redis commands
    (registries, heartbeats, status); a tick costs Sluice about fifteen. Batching is what lets
    one worker hold thousands of releases. One tick failing does not stop the others: each is
    retried through the `due` schedule like any crashed tick."""
    ctx = get_context()
    try:
        releases = ctx.store.get_many([release_id for release_id, _ in batch])
        prime_batch(ctx, releases, time.time())  # one Prometheus query per check, not per release
    except Exception:  # noqa: BLE001 - an optimisation: without it the ticks ask one by one
        log.exception("could not prepare the batch's Prometheus queries; ticks will ask one by one")
    outcomes = []
    try:
        for release_id, seq in batch:
            try:
                outcomes.append(run_tick(release_id, seq))
            except Exception:  # noqa: BLE001 - isolate releases from each other
                log.exception(
                    "tick %s #%s failed; it will be retried", release_id, seq, extra={"release_id": release_id}
                )
                outcomes.append("error")
    finally:
        ctx.prometheus.prime({}, 0.0)
    return outcomes
