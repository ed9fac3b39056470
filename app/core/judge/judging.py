"""The judge: is the candidate worse than stable, on the counts both served over the same span?

Pure (no I/O). The tick observes counts since the step's weights were confirmed (and after the
policy's `warmup`): from the router (what users saw: HAProxy's per-server responses, refused
connections and timeouts) and from the metrics backend (status codes, latency histogram). This
module runs one evaluation of a step: every comparison and guard, each with its evidence
(app/core/judge/evidence.py: an anytime-valid test, so looking every interval does not inflate false alarms):

- comparisons with stable, always on (`judge:` in the policy tunes them): `errors` (5xx and
  proxy errors), `4xx`, `slow` (over a latency bound; a timeout is an error at the proxy) --
  one comparison is app/core/judge/compare.py, the samples app/core/judge/samples.py;
- guards from the policy's built-in checks (app/core/judge/guards.py): `error_rate` max, `latency`
  min ("90% under 500 ms") tested on the same counts; `request_rate` min is a traffic floor: below
  it the step waits;
- `query` checks stay with app.core.decide's threshold judge (their value is whatever the query says).

A result's verdict is `fail` (strong evidence), `pass` (enough evidence that it is not worse),
`insufficient` (hold: too little traffic yet) or `no_data`. See docs/judging.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.core.config.policy import CheckConfig, PolicyConfig
from app.core.judge import evidence as ev
from app.core.judge.compare import RESULT_NAMES, ComparisonInput, StepContext, compare, looks_broken, plus
from app.core.judge.guards import guard, traffic_floor, warming
from app.core.judge.latency import NAME as LATENCY_NAME
from app.core.judge.latency import compare_latency
from app.core.judge.memo import Memo, direct
from app.core.judge.plan import carry as carried_into
from app.core.judge.samples import (
    MIN_LIVE_REFERENCE,
    Sample,
    auto_slow_bound,
    backend_failed,
    client_errors_sample,
    errors_sample,
    no_histogram,
    slow_sample,
    why_none,
)
from app.core.models import CheckResult, EvidenceObservation, JudgeState, Release, VersionCounts

__all__ = ["Judgement", "evidence_since", "judge_step", "latency_since", "looks_broken"]


@dataclass(frozen=True)
class Judgement:
    """What the judge found at one evaluation, for app.core.decide."""

    results: list[CheckResult]
    state: JudgeState  # the release's judge state if this step ended now (evidence carried, baseline)
    waiting: list[str]  # why the evidence does not suffice yet (empty: it does)
    since: float


def evidence_since(release: Release) -> float | None:
    """Where this step's evidence starts: when its weights were confirmed (never before the
    candidate took this share of traffic). None before the release has started."""
    return release.step_started_at


def latency_since(release: Release, policy: PolicyConfig) -> float | None:
    """Where this step's latency evidence starts: as the step's, but not before the candidate's
    first traffic + warmup (a cold candidate is slow for its first seconds; its errors count)."""
    since = evidence_since(release)
    first = release.judge.first_traffic_at
    if since is None or first is None:
        return since
    return max(since, first + policy.judge.warmup)


@dataclass(frozen=True)
class _Evaluation:
    """One evaluation's view of the observations: spans, which counts to use, the test level."""

    obs: EvidenceObservation
    since: float
    warm_until: float  # latency counts start here (after the candidate's warmup)
    now: float
    step: int
    cand_latency: VersionCounts
    stable_latency: VersionCounts
    stable_live: bool  # stable still serves traffic (not the 100% step)
    use_router: bool  # errors and 4xx from the router (what users saw)

    @property
    def warming(self) -> bool:
        return self.now <= self.warm_until


def judge_step(
    policy: PolicyConfig,
    release: Release,
    obs: EvidenceObservation | None,
    step: int,
    now: float,
    memo: Memo = direct,
) -> Judgement:
    """Every comparison and guard for the current step, and the judge state to carry on. `memo`:
    how the statistics are called (app/core/judge/memo.py); the judgement is the same either way."""
    state = release.judge.model_copy(deep=True)
    since = obs.since if obs is not None else (evidence_since(release) or now)
    if obs is None or now <= since:
        return Judgement([], state, ["evidence: no counts yet"], since)
    view = _view(release, obs, since, step, now)
    if state.slow_under is None:
        # Relative to stable, not the SLO's bound: "twice as slow, still under 500 ms" is a regression.
        state.slow_under = (
            policy.judge.slow.under
            or auto_slow_bound(obs.stable)
            or auto_slow_bound(obs.stable_before or VersionCounts())
        )
    comparisons = _comparisons(policy, view, state)
    guards = [
        c for c in policy.checks if c.type in ("error_rate", "latency") and (c.min is not None or c.max is not None)
    ]
    latency = policy.judge.latency.enabled
    tests = max(1, len(comparisons) + len(guards) + latency)
    # Each step is its own test (its counts start when its weights were confirmed, so a spike
    # is never weighted differently for the two versions): Bonferroni over checks and steps.
    alpha = ev.check_alpha(policy.judge.alpha, n_checks=tests, n_steps=policy.judged_periods)
    # The comparisons spend their share of α over the steps by a plan instead (app/core/judge/plan.py),
    # leaving the bake its share of the periods (docs/bake.md).
    ctx = StepContext(
        view.stable_live, state, alpha, step, now, final=step >= len(policy.steps) - 1,
        release_alpha=policy.judge.alpha / tests * len(policy.steps) / policy.judged_periods,
        n_steps=len(policy.steps), memo=memo,
    )  # fmt: skip
    results = [_run_comparison(c, ctx, view) for c in comparisons]
    results += [_run_latency(policy, ctx, view)] if latency else []
    threshold = math.log(1.0 / alpha)
    results += [_run_guard(check, view, threshold, policy.judge.client_timeout) for check in guards]
    span = max(now - since, 1e-9)
    results += [
        traffic_floor(check, obs.candidate, view.use_router, span, step, now)
        for check in policy.checks
        if check.type == "request_rate"
    ]
    waiting = [r.detail for r in results if r.verdict == "insufficient"]
    return Judgement(results, state, waiting, since)


def _view(release: Release, obs: EvidenceObservation, since: float, step: int, now: float) -> _Evaluation:
    cand_latency, stable_latency = obs.candidate, obs.stable
    if obs.latency_since is not None and obs.latency_since > since:
        cand_latency = VersionCounts(metrics=obs.candidate_latency)
        stable_latency = VersionCounts(metrics=obs.stable_latency)
    stable_live = release.traffic_weights().get(release.target_version, 0) < 100
    return _Evaluation(
        obs=obs,
        since=since,
        warm_until=obs.latency_since if obs.latency_since is not None else since,
        now=now,
        step=step,
        cand_latency=cand_latency,
        stable_latency=stable_latency,
        stable_live=stable_live,
        use_router=obs.candidate.router is not None and (obs.stable.router is not None or not stable_live),
    )


def _comparisons(policy: PolicyConfig, view: _Evaluation, state: JudgeState) -> list[ComparisonInput]:
    """The enabled comparisons with this step's samples (latency over the span after warmup)."""
    cfg, obs = policy.judge, view.obs
    checks = {c.type: c for c in policy.checks if c.type != "query"}
    ignore = cfg.client_errors.ignore_codes

    def sample(v: VersionCounts, kind: str) -> Sample | None:
        if kind == "errors":
            return errors_sample(v, view.use_router, cfg.client_timeout)
        if kind == "4xx":
            return client_errors_sample(v, view.use_router, ignore)
        return slow_sample(v, state.slow_under)

    out = []
    for kind, conf in (("errors", cfg.errors), ("4xx", cfg.client_errors), ("slow", cfg.slow)):
        if not conf.enabled:
            continue
        before = sample(obs.stable_before, kind) if obs.stable_before is not None else None
        cand, live = sample(obs.candidate, kind), sample(obs.stable, kind)
        if kind == "slow":
            cand, live = sample(view.cand_latency, kind), sample(view.stable_latency, kind)
        margin = conf.margin
        if margin is None and kind == "errors" and "error_rate" in checks:
            margin = checks["error_rate"].max_over_stable
        out.append(ComparisonInput(kind, conf, margin, cand, live, before))
    return out


def _run_comparison(c: ComparisonInput, ctx: StepContext, view: _Evaluation) -> CheckResult:
    """One comparison, and what it adds to the judge state if the step ends now."""
    obs, state, name = view.obs, ctx.state, RESULT_NAMES[c.kind]
    if c.kind == "slow" and view.warming:
        return warming(name, view.warm_until - view.now, view.step, view.now)
    unavailable = c.kind == "slow" and no_histogram(obs.candidate) and no_histogram(obs.stable)
    failed = backend_failed(obs.stable) or backend_failed(obs.candidate)
    if c.kind == "slow" and state.slow_under is None and not unavailable:
        if failed:
            # Prometheus down: the bound cannot be set; that is missing data, not too little traffic.
            return CheckResult(
                name=name, step=view.step, at=view.now, value=None, threshold="bound from stable",
                verdict="no_data", detail=f"slow: {failed}",
            )  # fmt: skip
        return CheckResult(
            name=name, step=view.step, at=view.now, value=None, threshold="bound from stable",
            verdict="insufficient",
            detail=f"slow: waiting for {MIN_LIVE_REFERENCE} stable responses to set the slow bound",
        )  # fmt: skip
    span = view.now - (view.warm_until if c.kind == "slow" else view.since)
    result, carry = compare(c, ctx, unavailable=unavailable, why=why_none(obs.candidate), span=span, failed=failed)
    if c.before is not None and view.stable_live and c.kind not in state.before:
        state.before[c.kind] = (c.before.bad, c.before.n)  # stable's prior at 100% (plan.py)
    if carry is not None:
        state.evidence[c.kind] = carry[0]  # for the record: this step's evidence
        plan = ctx.plan(c.kind)
        if plan is not None and (into := carried_into(plan, carry[0], ctx.step, ctx.n_steps)) is not None:
            state.wealth[c.kind] = into
        if carry[1] is not None:
            state.baseline[c.kind] = plus(state.baseline.get(c.kind), carry[1])
        if c.cand is not None:
            state.candidate[c.kind] = plus(state.candidate.get(c.kind), c.cand)
    return result


def _run_latency(policy: PolicyConfig, ctx: StepContext, view: _Evaluation) -> CheckResult:
    """The whole latency distribution against stable's (app/core/judge/latency.py), after warmup."""
    if view.warming:
        return warming(LATENCY_NAME, view.warm_until - view.now, view.step, view.now)
    obs = view.obs
    failed = backend_failed(obs.stable) or backend_failed(obs.candidate)
    # Judged on the step's own counts, as for `slow`: the latency span alone may hold no scrape yet.
    unavailable = no_histogram(obs.candidate) and no_histogram(obs.stable)
    return compare_latency(
        policy.judge.latency, ctx, view.cand_latency, view.stable_latency, obs.stable_before, failed, unavailable
    )


def _run_guard(check: CheckConfig, view: _Evaluation, threshold: float, client_timeout: float | None) -> CheckResult:
    """An absolute guard on this step's counts (latency ones after warmup)."""
    if check.type == "latency" and view.warming:
        return warming(check.name, view.warm_until - view.now, view.step, view.now)
    obs = view.obs
    counted = view.cand_latency if check.type == "latency" else obs.candidate
    reference = (view.stable_latency if check.type == "latency" else obs.stable) if view.stable_live else None
    return guard(
        check, counted, reference, view.use_router, threshold, view.step, view.now, backend_failed(counted),
        client_timeout=client_timeout,
    )  # fmt: skip
