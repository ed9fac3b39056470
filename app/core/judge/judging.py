"""The judge: is the candidate worse than stable, on the counts both served over the same span?

Pure (no I/O). The tick observes counts since the step's weights were confirmed (and after the
policy's `warmup`): from the router (what users saw: HAProxy's per-server responses, refused
connections and timeouts) and from the metrics backend (status codes, latency histogram). This
module turns them into one result per comparison and per absolute guard, each with its evidence
(app/core/judge/evidence.py: an anytime-valid test, so looking every interval does not inflate false alarms):

- comparisons with stable, always on (`judge:` in the policy tunes them): `errors` (5xx and
  proxy errors), `4xx`, `slow` (over a latency bound; a timeout is an error at the proxy);
- guards from the policy's built-in checks: `error_rate` max, `latency` min ("90% under 500 ms")
  tested on the same counts; `request_rate` min is a traffic floor: below it the step waits;
- `query` checks stay with app.core.decide's threshold judge (their value is whatever the query says).

A result's verdict is `fail` (strong evidence), `pass` (enough evidence that it is not worse),
`insufficient` (hold: too little traffic yet) or `no_data`. See docs/judging.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.core.config.policy import CheckConfig, ComparisonConfig, PolicyConfig
from app.core.describe import describe_threshold, format_value
from app.core.judge import evidence as ev
from app.core.models import CheckResult, EvidenceObservation, JudgeState, Release, VersionCounts

# Comparison kinds (app.core.judge.evidence's names) and the names their results carry.
RESULT_NAMES = {"errors": "errors-vs-stable", "4xx": "4xx-vs-stable", "slow": "slow-vs-stable"}
# Below this many stable requests in the span, stable's live counts are too few to be the reference
# (e.g. at the 100% step): the judge compares with stable's counts from the steps before.
MIN_LIVE_REFERENCE = 50
# An absolute guard needs this many candidate requests before it can pass.
MIN_GUARD_REQUESTS = 20
# A step before the last passes a comparison once the candidate served this many requests in it
# and does not look worse than stable by more than the margin; the last step (promotion) needs
# the evidence floor: data that rule out a regression of `detectable`. Early steps limit how many
# users a bad version reaches; the proof that it is good is owed before it takes all of them.
MIN_STEP_REQUESTS = 10
# No latency counts over a span shorter than this (the first seconds after warmup) is "too early",
# not missing data: scrapes are 1-30 s apart.
SHORT_SPAN = 30.0
# Without `judge.slow.under`: the smallest bucket bound that at most this share of stable's
# responses exceed is the "slow" bound (relative to stable; a latency check's `under` is an SLO).
# Just above the body of stable's latencies: at 10 % the bound fell inside the body (10 ms for a 5 ms
# service), where machine noise moved both shares by points and a +5-point tail of 1 s responses was
# diluted to +0.7 (the scenario suite's bad-slow-tail was promoted once). At 2 % it could land past
# a 2 % tail, on a bound the regression's slow responses do not cross (the simulation's +5 points
# slow were then caught in 45 % of releases instead of 100 %).
AUTO_SLOW_SHARE = 0.05


@dataclass(frozen=True)
class Sample:
    bad: float
    n: float
    source: str  # "HAProxy" (router), "Prometheus" (metrics), ...


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


# --- samples: (bad, requests) of one version, by kind ---------------------------------------------


def _metrics_ok(v: VersionCounts) -> bool:
    return v.metrics is not None and v.metrics.requests is not None


def errors_sample(v: VersionCounts, use_router: bool) -> Sample | None:
    if use_router and v.router is not None:
        r = v.router
        return Sample(r.by_class.get("5xx", 0.0) + r.proxy_errors, r.requests, "HAProxy")
    if _metrics_ok(v):
        m = v.metrics
        assert m is not None and m.requests is not None
        return Sample(min(m.by_class.get("5xx", 0.0), m.requests), m.requests, "Prometheus")
    return None


def client_errors_sample(v: VersionCounts, use_router: bool, ignore: list[int]) -> Sample | None:
    m = v.metrics
    if ignore and m is not None and m.requests is not None and m.by_code:
        bad = sum(c for code, c in m.by_code.items() if code.startswith("4") and _code(code) not in ignore)
        return Sample(min(bad, m.requests), m.requests, "Prometheus")
    if use_router and v.router is not None:
        r = v.router
        return Sample(r.by_class.get("4xx", 0.0), r.requests, "HAProxy")
    if m is not None and m.requests is not None:
        return Sample(min(m.by_class.get("4xx", 0.0), m.requests), m.requests, "Prometheus")
    return None


def _code(code: str) -> int:
    try:
        return int(code)
    except ValueError:
        return -1


def slow_sample(v: VersionCounts, under: float | None) -> Sample | None:
    """Responses over `under` seconds (including those over the largest bucket) of those the
    histogram counted. None without a histogram."""
    if under is None or v.metrics is None or not v.metrics.buckets:
        return None
    buckets = v.metrics.buckets
    total = buckets[-1][1]
    within = 0.0
    for bound, count in buckets:
        if bound <= under * (1 + 1e-9):
            within = count
    return Sample(max(total - within, 0.0), total, "Prometheus")


def auto_slow_bound(v: VersionCounts) -> float | None:
    """The smallest finite bucket bound that at most AUTO_SLOW_SHARE of `v`'s responses exceed."""
    if v.metrics is None or not v.metrics.buckets:
        return None
    total = v.metrics.buckets[-1][1]
    if total < MIN_LIVE_REFERENCE:
        return None
    finite = [(bound, count) for bound, count in v.metrics.buckets if math.isfinite(bound)]
    for bound, count in finite:
        if total - count <= AUTO_SLOW_SHARE * total:
            return bound
    # A heavy tail past the largest finite bound: "over the largest bound" is still a fair
    # comparison of the two versions. With only +Inf there is no bound: no_histogram() says so.
    return finite[-1][0] if finite else None


def no_histogram(v: VersionCounts) -> bool:
    """The metrics backend answered (requests counted) and the version has no latency histogram
    with a finite bound."""
    m = v.metrics
    return m is not None and m.requests is not None and not any(math.isfinite(b) for b, _ in m.buckets)


def backend_failed(v: VersionCounts | None) -> str | None:
    """Why the metrics backend could not give a version's counts (unreachable, too slow), or None:
    missing data, which `on_no_data` rules, not missing traffic, which holds for evidence."""
    m = v.metrics if v is not None else None
    return (m.error or "the metrics backend did not answer") if m is not None and m.backend_failed else None


def why_none(v: VersionCounts) -> str:
    """Why a version has no counts, as the metrics backend explained it."""
    if v.metrics is not None and v.metrics.error:
        return v.metrics.error
    return "no counts from the metrics backend or the router"


# --- the judgement --------------------------------------------------------------------------------


def judge_step(
    policy: PolicyConfig, release: Release, obs: EvidenceObservation | None, step: int, now: float
) -> Judgement:
    """Every comparison and guard for the current step, and the judge state to carry on."""
    cfg = policy.judge
    state = release.judge.model_copy(deep=True)
    since = obs.since if obs is not None else (evidence_since(release) or now)
    results: list[CheckResult] = []
    waiting: list[str] = []
    if obs is None or now <= since:
        return Judgement([], state, ["evidence: no counts yet"], since)
    warm_until = obs.latency_since if obs.latency_since is not None else since
    warming = now <= warm_until
    cand_latency, stable_latency = obs.candidate, obs.stable
    if obs.latency_since is not None and obs.latency_since > since:
        cand_latency = VersionCounts(metrics=obs.candidate_latency)
        stable_latency = VersionCounts(metrics=obs.stable_latency)

    candidate_weight = release.traffic_weights().get(release.target_version, 0)
    stable_live = candidate_weight < 100
    use_router = obs.candidate.router is not None and (obs.stable.router is not None or not stable_live)
    checks = {c.type: c for c in policy.checks if c.type != "query"}
    if state.slow_under is None:
        # Relative to stable, not the SLO's bound: "twice as slow, still under 500 ms" is a regression.
        state.slow_under = (
            cfg.slow.under or auto_slow_bound(obs.stable) or auto_slow_bound(obs.stable_before or VersionCounts())
        )

    comparisons: list[tuple[str, ComparisonConfig, Sample | None, Sample | None, Sample | None]] = []
    ignore = cfg.client_errors.ignore_codes

    def samples(v: VersionCounts, kind: str) -> Sample | None:
        if kind == "errors":
            return errors_sample(v, use_router)
        if kind == "4xx":
            return client_errors_sample(v, use_router, ignore)
        return slow_sample(v, state.slow_under)

    for kind, conf in (("errors", cfg.errors), ("4xx", cfg.client_errors), ("slow", cfg.slow)):
        if conf.enabled:
            before = samples(obs.stable_before, kind) if obs.stable_before is not None else None
            cand, live = samples(obs.candidate, kind), samples(obs.stable, kind)
            if kind == "slow":
                cand, live = samples(cand_latency, kind), samples(stable_latency, kind)
            comparisons.append((kind, conf, cand, live, before))
    guards = [
        c for c in policy.checks if c.type in ("error_rate", "latency") and (c.min is not None or c.max is not None)
    ]
    tests = max(1, len(comparisons) + len(guards))
    # Each step is its own test (its counts start when its weights were confirmed, so a spike
    # is never weighted differently for the two versions): Bonferroni over checks and steps.
    alpha = ev.check_alpha(cfg.alpha, n_checks=tests, n_steps=len(policy.steps))
    threshold = math.log(1.0 / alpha)

    for kind, conf, cand, live, before in comparisons:
        if kind == "slow" and warming:
            results.append(_warming(RESULT_NAMES[kind], warm_until - now, step, now))
            waiting.append(results[-1].detail)
            continue
        unavailable = kind == "slow" and no_histogram(obs.candidate) and no_histogram(obs.stable)
        failed = backend_failed(obs.stable) or backend_failed(obs.candidate)
        if kind == "slow" and state.slow_under is None and not unavailable and failed:
            # Prometheus down: the bound cannot be set; that is missing data, not too little traffic.
            results.append(
                CheckResult(
                    name=RESULT_NAMES[kind], step=step, at=now, value=None, threshold="bound from stable",
                    verdict="no_data", detail=f"slow: {failed}",
                )
            )  # fmt: skip
            continue
        if kind == "slow" and state.slow_under is None and not unavailable:
            results.append(
                CheckResult(
                    name=RESULT_NAMES[kind],
                    step=step,
                    at=now,
                    value=None,
                    threshold="bound from stable",
                    verdict="insufficient",
                    detail=f"slow: waiting for {MIN_LIVE_REFERENCE} stable responses to set the slow bound",
                )
            )
            waiting.append(results[-1].detail)
            continue
        margin = conf.margin
        if margin is None and kind == "errors" and "error_rate" in checks:
            margin = checks["error_rate"].max_over_stable
        final = step >= len(policy.steps) - 1
        result, carry = _compare(
            kind,
            conf,
            margin,
            cand,
            live,
            before,
            stable_live,
            state,
            alpha,
            step,
            now,
            unavailable,
            final,
            why_none(obs.candidate),
            now - (warm_until if kind == "slow" else since),
            failed,
        )
        results.append(result)
        if carry is not None:
            state.evidence[kind] = carry[0]  # for the record: this step's evidence
            if carry[1] is not None:
                state.baseline[kind] = _plus(state.baseline.get(kind), carry[1])
            if cand is not None:
                state.candidate[kind] = _plus(state.candidate.get(kind), cand)
        if result.verdict == "insufficient":
            waiting.append(result.detail)

    span = max(now - since, 1e-9)
    for check in guards:
        if check.type == "latency" and warming:
            results.append(_warming(check.name, warm_until - now, step, now))
            waiting.append(results[-1].detail)
            continue
        counted = cand_latency if check.type == "latency" else obs.candidate
        reference = (stable_latency if check.type == "latency" else obs.stable) if stable_live else None
        result = _guard(check, counted, reference, use_router, threshold, step, now, backend_failed(counted))
        results.append(result)
        if result.verdict == "insufficient":
            waiting.append(result.detail)
    for check in policy.checks:
        if check.type == "request_rate":
            result = _traffic_floor(check, obs.candidate, use_router, span, step, now)
            results.append(result)
            if result.verdict == "insufficient":
                waiting.append(result.detail)
    return Judgement(results, state, waiting, since)


def _compare(
    kind: str,
    conf: ComparisonConfig,
    margin: float | None,
    cand: Sample | None,
    live: Sample | None,
    before: Sample | None,
    stable_live: bool,
    state: JudgeState,
    alpha: float,
    step: int,
    now: float,
    unavailable: bool = False,
    final: bool = True,
    why: str = "",
    span: float = math.inf,
    failed: str | None = None,
) -> tuple[CheckResult, tuple[float, Sample | None] | None]:
    """One comparison. Returns its result and, for the state if the step ends now, the total log
    e-value and the live stable sample to add to the baseline."""
    name = RESULT_NAMES[kind]
    defaults = ev.DEFAULTS[kind]
    margin, detectable = _margin_and_floor(defaults, margin, conf.detectable)
    base = dict(name=name, step=step, at=now, threshold=f"<= stable + {_points(margin)}")
    if kind == "slow" and unavailable:
        # Both versions answer and neither exports a latency histogram: nothing to compare, and
        # nothing against the candidate (`sluice doctor` warns about it).
        return CheckResult(
            **base, value=None, verdict="no_data", detail="slow: no latency histogram for either version",
            evidence={"unavailable": True},
        ), None  # fmt: skip
    if cand is None:
        if kind == "slow" and span < SHORT_SPAN and not failed:
            # The latency span begins when warmup ends: its first seconds may hold no scrape yet.
            return CheckResult(
                **base, value=None, verdict="insufficient", detail=f"{kind}: too early to count ({span:.0f}s)"
            ), None  # fmt: skip
        return CheckResult(**base, value=None, verdict="no_data", detail=f"{kind}: {why}"), None
    reference, ref_name = live, "stable"
    if not stable_live:  # the 100% step: stable serves nobody now
        saved = state.baseline.get(kind)
        if saved is not None and saved[1] >= MIN_LIVE_REFERENCE:
            reference, ref_name = Sample(saved[0], saved[1], "earlier steps"), "stable (earlier steps)"
        elif before is not None and before.n >= MIN_LIVE_REFERENCE:
            reference, ref_name = before, "stable (before the release)"
    if reference is None or reference.n < (MIN_LIVE_REFERENCE if not stable_live else 1):
        return CheckResult(
            **base, value=None, verdict="insufficient", detail=f"{kind}: no stable traffic to compare with yet"
        ), None
    bad_c, n_c = min(cand.bad, cand.n), cand.n
    bad_s, n_s = min(reference.bad, reference.n), reference.n
    e = ev.judge(
        kind,
        bad_c,
        n_c,
        bad_s,
        n_s,
        alpha=alpha,
        margin=margin,
        detectable=detectable,
        decisive_gap=defaults.decisive_gap,
        reference=ref_name,
    )
    detail = e.sentence() + f" [{cand.source}]"
    verdict = {"fail": "fail", "pass": "pass", "insufficient": "insufficient"}[e.verdict]
    if verdict == "insufficient" and not final and n_c >= MIN_STEP_REQUESTS and e.estimate <= margin:
        verdict = "pass"
        detail = (
            f"{kind} {100 * e.rate_c:.1f}% vs {ref_name} {100 * e.rate_s:.1f}% (n={n_c:,.0f} vs {n_s:,.0f}): "
            f"not worse so far; promotion waits for ~{e.needed_n_c or 0:,} requests [{cand.source}]"
        )
    pooled = _pooled(cand, reference, stable_live, state, kind)
    if verdict == "insufficient" and final and pooled is not None:
        # Promotion asks "is it good?" of everything the candidate served, each step's counts
        # against stable's over the same span. A failure stays per step (above): pooling adds no
        # way to fail, so the false-alarm bound is unchanged; it only lets evidence gathered at
        # 10% and 50% count towards the floor, which a low-traffic service needs.
        whole_c, whole_s = pooled
        e_all = ev.judge(
            kind,
            min(whole_c.bad, whole_c.n),
            whole_c.n,
            min(whole_s.bad, whole_s.n),
            whole_s.n,
            alpha=alpha,
            margin=margin,
            detectable=detectable,
            decisive_gap=defaults.decisive_gap,
            reference="stable",
        )
        if e_all.verdict == "pass" and n_c >= MIN_STEP_REQUESTS:
            verdict = "pass"
            detail = e_all.sentence() + f" over the whole release [{cand.source}]"
        elif e_all.verdict != "fail":
            detail = e.sentence() + f"; over the whole release: {e_all.sentence()} [{cand.source}]"
    result = CheckResult(
        **base,
        value=e.rate_c,
        stable_value=e.rate_s,
        verdict=verdict,
        detail=detail,
        decisive=e.decisive,
        evidence={
            "kind": kind,
            "source": cand.source,
            "reference": ref_name,
            "bad": [round(bad_c, 3), round(bad_s, 3)],
            "requests": [round(n_c, 3), round(n_s, 3)],
            "estimate": e.estimate,
            "interval": [e.lower, e.upper],
            "margin": margin,
            "detectable": detectable,
            "e_value": e.e_value if math.isfinite(e.e_value) else None,
            "log_e": e.log_e,
            "alpha": alpha,
            "decisive": e.decisive,
            "needed_requests": e.needed_n_c,
        },
    )
    live_for_baseline = live if (stable_live and live is not None and ref_name == "stable") else None
    return result, (e.log_e, live_for_baseline)


# A margin is a share of responses: "worse by more than 100 points" cannot happen, so a larger
# one (e.g. `max_over_stable: 1` on an error_rate check, meaning "never mind stable") is this.
MAX_MARGIN = 0.95


def _margin_and_floor(
    defaults: ev.CheckDefaults, margin: float | None, detectable: float | None
) -> tuple[float, float]:
    """The comparison's margin and evidence floor, always with 0 <= margin < detectable < 1: the
    floor defaults to twice the margin (at least the kind's default), and stays under 100%."""
    margin = min(defaults.margin if margin is None else max(margin, 0.0), MAX_MARGIN)
    if detectable is None or not margin < detectable < 1:
        detectable = max(defaults.detectable, 2 * margin)
        if detectable >= 1:
            detectable = (margin + 1) / 2
    return margin, detectable


def _plus(total: tuple[float, float] | None, sample: Sample) -> tuple[float, float]:
    bad, n = total if total is not None else (0.0, 0.0)
    return (bad + sample.bad, n + sample.n)


def _pooled(
    cand: Sample, reference: Sample, stable_live: bool, state: JudgeState, kind: str
) -> tuple[Sample, Sample] | None:
    """The candidate's counts over the whole release (the steps passed and this one) and stable's
    over the same spans; None when no step has been passed yet (nothing to pool)."""
    carried = state.candidate.get(kind)
    if carried is None or carried[1] <= 0:
        return None
    whole_c = Sample(carried[0] + cand.bad, carried[1] + cand.n, cand.source)
    if stable_live:  # `reference` is stable's live sample over this step's span
        bad, n = _plus(state.baseline.get(kind), reference)
        return whole_c, Sample(bad, n, reference.source)
    return whole_c, reference  # at 100%: stable's counts from the steps passed (the baseline)


def looks_broken(results: list[CheckResult]) -> bool:
    """A comparison still short of evidence whose candidate already looks worse by its decisive gap
    (e.g. half its answers errors, on a few requests): worth looking at again before the interval
    is up. The test is anytime-valid, so looking sooner costs no false alarms."""
    for r in results:
        e = r.evidence or {}
        defaults, estimate = ev.DEFAULTS.get(str(e.get("kind"))), e.get("estimate")
        if r.verdict != "insufficient" or defaults is None or not isinstance(estimate, int | float):
            continue
        if estimate >= defaults.decisive_gap:
            return True
    return False


def _warming(name: str, left: float, step: int, now: float) -> CheckResult:
    return CheckResult(
        name=name,
        step=step,
        at=now,
        value=None,
        threshold="after warmup",
        verdict="insufficient",
        detail=f"{name}: the candidate is warming up ({left:.0f}s left; judge.warmup)",
    )


def _guard(
    check: CheckConfig,
    cand: VersionCounts,
    stable: VersionCounts | None,
    use_router: bool,
    threshold: float,
    step: int,
    now: float,
    failed: str | None = None,
) -> CheckResult:
    """An absolute limit (an SLO) on the candidate, tested on its counts with the same evidence rule.
    It blames the candidate only when stable, over the same span, keeps the limit: when both break
    it (a traffic spike, a slow dependency), the cause is shared, and the comparisons with stable
    judge whether the candidate is worse."""
    base = dict(name=check.name, step=step, at=now, threshold=describe_threshold(check))
    shared = _breaks_too(check, stable, use_router)
    if check.type == "error_rate":
        sample = errors_sample(cand, use_router)
        bad_limit = check.max  # the share of bad responses must stay under this
        good_limit = check.min
        to_value = lambda s: s.bad / s.n  # noqa: E731
    else:
        sample = slow_sample(cand, check.under)
        bad_limit = None if check.min is None else 1.0 - check.min
        good_limit = None if check.max is None else 1.0 - check.max
        to_value = lambda s: 1.0 - s.bad / s.n  # noqa: E731 - the fraction under the bound
    if check.type == "latency" and no_histogram(cand):
        # No latency histogram (e.g. Datadog's distributions): app.core.decide judges the check on the
        # provider's own value for it instead.
        return CheckResult(
            **base, value=None, verdict="no_data", detail="no latency histogram", evidence={"fallback": True}
        )
    if (sample is None or sample.n <= 0) and failed:
        return CheckResult(**base, value=None, verdict="no_data", detail=f"{check.name}: {failed}")
    if sample is None or sample.n <= 0:
        return CheckResult(**base, value=None, verdict="insufficient", detail=f"{check.name}: no candidate traffic yet")
    value = to_value(sample)
    rate = sample.bad / sample.n
    if bad_limit is not None and 0 < bad_limit < 1:
        log_e = ev.log_e_over_limit(min(sample.bad, sample.n), sample.n, bad_limit)
        if log_e >= threshold and shared is not None:
            # Stable breaks the SLO too, over the same span: the cause is shared (a spike, a slow
            # dependency), and whether the candidate is worse than stable is the comparisons' call.
            return CheckResult(
                **base,
                value=value,
                verdict="pass",
                detail=f"{check.name} {format_value(value)} is beyond {describe_threshold(check)}, and so is stable's "
                f"{format_value(shared)} over the same span: a shared cause, not the candidate's",
            )
        if log_e >= threshold:
            detail = (
                f"{check.name} {format_value(value)} (n={sample.n:,.0f}): beyond {describe_threshold(check)}, "
                f"evidence 1/{math.exp(min(log_e, 700)):,.0f} [{sample.source}]"
            )
            return CheckResult(**base, value=value, verdict="fail", detail=detail, decisive=rate >= 0.5)
    elif bad_limit is not None and bad_limit <= 0 and sample.bad > 0 and sample.n >= MIN_GUARD_REQUESTS:
        return CheckResult(**base, value=value, verdict="fail", detail=f"{check.name} {format_value(value)}")
    if sample.n < MIN_GUARD_REQUESTS:
        return CheckResult(
            **base,
            value=value,
            verdict="insufficient",
            detail=f"{check.name}: {sample.n:.0f} of {MIN_GUARD_REQUESTS} requests needed to judge",
        )
    within = (bad_limit is None or rate <= bad_limit) and (good_limit is None or rate >= good_limit)
    if not within:
        return CheckResult(
            **base,
            value=value,
            verdict="insufficient",
            detail=f"{check.name} {format_value(value)} (n={sample.n:,.0f}) is beyond {describe_threshold(check)}, "
            "not conclusive yet",
        )
    return CheckResult(**base, value=value, verdict="pass", detail=f"[{sample.source}] n={sample.n:,.0f}")


def _breaks_too(check: CheckConfig, stable: VersionCounts | None, use_router: bool) -> float | None:
    """Stable's value when it, too, is beyond the check's limit over the same span; else None."""
    if stable is None:
        return None
    if check.type == "error_rate":
        sample = errors_sample(stable, use_router)
        if sample is None or sample.n < MIN_GUARD_REQUESTS:
            return None
        rate = sample.bad / sample.n
        return rate if check.max is not None and rate > check.max else None
    sample = slow_sample(stable, check.under)
    if sample is None or sample.n < MIN_GUARD_REQUESTS:
        return None
    under = 1.0 - sample.bad / sample.n
    return under if check.min is not None and under < check.min else None


def _traffic_floor(
    check: CheckConfig, cand: VersionCounts, use_router: bool, span: float, step: int, now: float
) -> CheckResult:
    """request_rate: a minimum is an evidence condition (too little traffic holds the step, never
    fails it); a maximum is a limit."""
    base = dict(name=check.name, step=step, at=now, threshold=describe_threshold(check))
    sample = errors_sample(cand, use_router)
    if sample is None:
        return CheckResult(**base, value=None, verdict="insufficient", detail=f"{check.name}: no candidate counts yet")
    per_minute = sample.n / span * 60.0
    if check.max is not None and per_minute > check.max:
        return CheckResult(
            **base,
            value=per_minute,
            verdict="fail",
            detail=f"{format_value(per_minute)} requests/min is above the maximum {format_value(check.max)}",
        )
    if check.min is not None and per_minute < check.min:
        return CheckResult(
            **base,
            value=per_minute,
            verdict="insufficient",
            detail=f"traffic {format_value(per_minute)}/min is below the minimum {format_value(check.min)}/min: "
            "waiting for traffic",
        )
    return CheckResult(**base, value=per_minute, verdict="pass")


def _points(rate: float) -> str:
    return f"{100 * rate:.3g} points"
