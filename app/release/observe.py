"""The tick's observe step: what Prometheus, the router and the cluster say about a release now.

Everything here turns into an `Observations` for the pure `decide` (app/core/decide.py); an outside
system that fails becomes "no data" with its reason, never an exception.
"""

from __future__ import annotations

import logging
import time

from app.config_file.schema import ApplicationConfig
from app.context import Context, UnknownService
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.core.judge.judging import evidence_since, latency_since
from app.core.models import EvidenceObservation, Observations, Release, ResponseCounts, VersionCounts
from app.release.bake import observe_bake
from app.release.proxy_view import observe_proxy
from app.release.scaling import observe_readiness
from integrations.metrics.interface import CountsPrimer, CountsSpan
from integrations.routers.interface import RouterError

log = logging.getLogger("sluice.tick")


def observe(ctx: Context, release: Release, now: float) -> Observations:
    """Ask Prometheus, the router and the cluster about the candidate. Errors become 'no data',
    never exceptions."""
    obs = Observations(at=now)
    try:
        app, svc, policy = ctx.locate(release)
    except UnknownService:
        return obs  # nothing to ask about: decide_next fails the release
    if release.state == "baking":  # the new stable against the previous version's history
        return observe_bake(ctx, release, now)
    if release.state != "running":
        obs.readiness = observe_readiness(ctx, app, svc, policy, release, obs, now)  # before `start`
        return obs
    started = time.monotonic()
    try:
        _observe_running(ctx, app, svc, policy, release, now, obs)
    finally:
        # The timeouts count the observing itself (app/core/decide.py): `now` plus how long it took, on
        # the same clock as `now` (a replay's `now` is in the past), the batch's asking included.
        obs.completed_at = now + (time.monotonic() - started) + _Batch.waited
    return obs


def _observe_running(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    policy: PolicyConfig,
    release: Release,
    now: float,
    obs: Observations,
) -> None:
    obs.checks = ctx.metrics_provider.observe_checks(policy, ctx.config.metrics, release, now)
    obs.evidence = observe_evidence(ctx, app, svc, policy, release, now)
    step = policy.steps[release.step]
    if step.requests is not None and release.step_started_at is not None:
        obs.step_requests = ctx.metrics_provider.step_requests(release, now, since=release.step_started_at)
    try:
        health = ctx.router(app).health(svc, release.target_version)
        obs.candidate_healthy, obs.health_detail = health.healthy, health.detail
    except RouterError as exc:
        obs.candidate_healthy, obs.health_detail = None, f"router could not tell: {exc}"
    if app.cluster is not None:  # Kubernetes: restarts and a failed rollout, whatever the router
        from integrations.kubernetes.health import observe_cluster

        observe_cluster(ctx, app, svc, release, obs)
    obs.readiness = observe_readiness(ctx, app, svc, policy, release, obs, now)  # before the next `advance`


# Stable's counts from before the release: the reference of a release whose first step is 100%.
BASELINE_SECONDS = 600.0


def observe_evidence(
    ctx: Context, app: ApplicationConfig, svc: ServiceConfig, policy: PolicyConfig, release: Release, now: float
) -> EvidenceObservation | None:
    """Both versions' counts over the same span, the step's evidence (app/core/judge/judging.py): from the
    metrics backend since the step began (after warmup), and from the router since the mark
    taken when the step's weights were confirmed."""
    since = evidence_since(release)
    if since is None:
        return None
    evidence = EvidenceObservation(since=since)
    if now <= since:
        return evidence
    source, target = release.source_version, release.target_version

    def counts(version: str, start: float, end: float) -> ResponseCounts:
        return ctx.metrics_provider.response_counts(release.service, version, release.namespace, start, end)

    evidence.candidate.metrics = counts(target, since, now)
    evidence.stable.metrics = counts(source, since, now)
    warm = latency_since(release, policy)
    if warm is not None and warm > since:
        evidence.latency_since = warm
        if now > warm:
            evidence.candidate_latency, evidence.stable_latency = counts(target, warm, now), counts(source, warm, now)
    # (`counts_spans` below lists these spans for a batch: keep the two in step.)
    router = ctx.router(app)
    mark = release.judge.router_mark
    counts_since = getattr(router, "counts_since", None)
    if mark is not None and counts_since is not None:
        try:
            seen = counts_since(svc, mark)
            evidence.candidate.router, evidence.stable.router = seen.get(target), seen.get(source)
        except (RouterError, KeyError, TypeError) as exc:
            log.warning("could not read the router's counts: %s", exc, extra={"release_id": release.id})
    if evidence.candidate.router is None:  # Kubernetes: the proxy's own series, if it exports them
        observe_proxy(ctx, app, svc, release, now, evidence)
    before = stable_before_span(release)
    if before is not None:
        evidence.stable_before = VersionCounts(metrics=counts(source, *before))
    return evidence


def stable_before_span(release: Release) -> tuple[float, float] | None:
    """The span of stable's counts before the release, when the judge uses them: at 100% with no
    earlier step they are the reference; at the first step, stable's prior (app/core/judge/plan.py)."""
    at_full = release.traffic_weights().get(release.target_version, 0) >= 100 and not release.judge.baseline
    if at_full or release.step == 0:
        return release.created_at - BASELINE_SECONDS, release.created_at
    return None


def counts_spans(release: Release, policy: PolicyConfig, now: float) -> list[tuple[str, float, float | None]]:
    """(version, start, end) of every span whose counts `observe_evidence` asks for this running
    release at `now` (end None: ending now): the step's evidence and its latency evidence when it
    starts later, both versions; stable's counts before the release when the judge uses them."""
    since = evidence_since(release)
    if release.state != "running" or since is None or now <= since:
        return []
    warm = latency_since(release, policy)
    starts = [since] + ([warm] if warm is not None and since < warm < now else [])
    versions = (release.target_version, release.source_version)
    spans: list[tuple[str, float, float | None]] = [(v, start, None) for start in starts for v in versions]
    before = stable_before_span(release)
    return spans + ([(release.source_version, *before)] if before is not None else [])


class _Batch:
    """How long the running batch's queries took before its ticks ran (workers/tick.py runs one
    batch at a time in a worker process). Its ticks' observing counts it: the timeouts run to the
    end of the observing, and a frozen Prometheus's wait is now spent asking for the whole batch."""

    waited = 0.0


def prime_batch(ctx: Context, releases: list[Release], at: float) -> int:
    """Before a batch's ticks: one grouped query per check and one request for the judge's counts
    instead of one per release; `forget_batch` drops the answers. Returns how many were primed."""
    started = time.monotonic()
    try:
        return ctx.prime_metrics(releases, at) + prime_counts(ctx, releases, at)
    finally:
        _Batch.waited = time.monotonic() - started


def forget_batch(ctx: Context) -> None:
    _Batch.waited = 0.0
    ctx.prime_metrics([], 0.0)
    prime_counts(ctx, [], 0.0)


def prime_counts(ctx: Context, releases: list[Release], at: float) -> int:
    """Let a provider that can (Prometheus) ask a batch's evidence counts in one request, before
    its ticks run (integrations/prometheus/packed_counts.py); no releases forgets them."""
    provider = ctx.metrics_provider
    if not isinstance(provider, CountsPrimer):
        return 0
    spans = []
    for release in releases:
        try:
            policy = ctx.locate(release)[2]
        except UnknownService:
            continue
        for version, start, end in counts_spans(release, policy, at):
            spans.append(CountsSpan(release.service, version, release.namespace, start, end))
    return provider.prime_counts(spans, at)
