"""One comparison of the candidate with stable (errors, 4xx or slow) at one evaluation.

Pure (no I/O). The samples come from app/core/judge/samples.py, the statistics from
app/core/judge/evidence.py; app/core/judge/judging.py runs every comparison of a step. See
docs/judging.md ("Verdicts", "Steps before the last, and the last").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.config.policy import ComparisonConfig
from app.core.judge import evidence as ev
from app.core.judge.memo import Memo, direct
from app.core.judge.plan import Spending, candidate_prior, informed_prior, spending
from app.core.judge.samples import MIN_LIVE_REFERENCE, Sample
from app.core.models import CheckResult, JudgeState

# Comparison kinds (app.core.judge.evidence's names) and the names their results carry.
RESULT_NAMES = {"errors": "errors-vs-stable", "4xx": "4xx-vs-stable", "slow": "slow-vs-stable"}
# A step before the last passes a comparison once the candidate served this many requests in it
# and does not look worse than stable by more than the margin; the last step (promotion) needs
# the evidence floor: data that rule out a regression of `detectable`. Early steps limit how many
# users a bad version reaches; the proof that it is good is owed before it takes all of them.
MIN_STEP_REQUESTS = 10
# No latency counts over a span shorter than this (the first seconds after warmup) is "too early",
# not missing data: scrapes are 1-30 s apart.
SHORT_SPAN = 30.0
# A margin is a share of responses: "worse by more than 100 points" cannot happen, so a larger
# one (e.g. `max_over_stable: 1` on an error_rate check, meaning "never mind stable") is this.
MAX_MARGIN = 0.95


@dataclass(frozen=True)
class ComparisonInput:
    """What one comparison judges: its kind and settings, and the samples of this step."""

    kind: str
    conf: ComparisonConfig
    margin: float | None  # the configured margin (None: the kind's default)
    cand: Sample | None
    live: Sample | None  # stable over the same span
    before: Sample | None  # stable before the release (the reference of a release that starts at 100%)


@dataclass(frozen=True)
class StepContext:
    """What every comparison of one evaluation shares."""

    stable_live: bool  # stable still serves traffic in this step (not the 100% step)
    state: JudgeState
    alpha: float
    step: int
    now: float
    final: bool  # the last step: promotion needs the evidence floor
    # The comparison's α over the whole release, spent by a plan over the steps (app/core/judge/
    # plan.py); None: each step tests alone at `alpha` (Bonferroni over the steps).
    release_alpha: float | None = None
    n_steps: int = 1
    memo: Memo = direct  # how the statistics are called (app/core/judge/memo.py): the same either way

    def plan(self, kind: str) -> Spending | None:
        if self.release_alpha is None:
            return None
        return spending(self.state.wealth.get(kind), self.step, self.n_steps, self.release_alpha)


def compare(
    c: ComparisonInput,
    ctx: StepContext,
    *,
    unavailable: bool = False,
    why: str = "",
    span: float = math.inf,
    failed: str | None = None,
) -> tuple[CheckResult, tuple[float, Sample | None] | None]:
    """One comparison. Returns its result and, for the state if the step ends now, the total log
    e-value and the live stable sample to add to the baseline."""
    kind, cand = c.kind, c.cand
    defaults = ev.DEFAULTS[kind]
    margin, detectable = margin_and_floor(defaults, c.margin, c.conf.detectable)
    base: dict[str, Any] = dict(
        name=RESULT_NAMES[kind], step=ctx.step, at=ctx.now, threshold=f"<= stable + {_points(margin)}"
    )
    early = _unjudged(kind, cand, base, unavailable, why, span, failed)
    if early is not None:
        return early, None
    assert cand is not None
    reference, ref_name = _reference(c, ctx)
    if reference is None or reference.n < (MIN_LIVE_REFERENCE if not ctx.stable_live else 1):
        return CheckResult(
            **base, value=None, verdict="insufficient", detail=f"{kind}: no stable traffic to compare with yet"
        ), None
    bad_c, n_c = min(cand.bad, cand.n), cand.n
    bad_s, n_s = min(reference.bad, reference.n), reference.n
    step_floor, times_stable = (detectable, c.conf.times_stable) if ctx.final else _step_floor(defaults, detectable)
    stable_seen = _stable_seen(c, ctx, ref_name)
    e = ctx.memo(
        ev.judge, kind, bad_c, n_c, bad_s, n_s, alpha=ctx.alpha, margin=margin, detectable=step_floor,
        decisive_gap=defaults.decisive_gap, reference=ref_name, times_stable=times_stable,
        plan=ctx.plan(kind),
        priors=(candidate_prior(ctx.state.candidate.get(kind), stable_seen), informed_prior(stable_seen)),
    )  # fmt: skip
    detail = e.sentence() + f" [{cand.source}]"
    verdict = {"fail": "fail", "pass": "pass", "insufficient": "insufficient"}[e.verdict]
    if verdict == "insufficient" and not ctx.final and n_c >= MIN_STEP_REQUESTS:
        verdict, detail = _step_goes_on(e, margin, step_floor, ctx.release_alpha is not None, cand.source, detail)
    if verdict == "insufficient" and ctx.final:
        verdict, detail = _over_the_release(c, ctx, reference, e, margin, detectable, verdict, detail)
    result = CheckResult(
        **base,
        value=e.rate_c,
        stable_value=e.rate_s,
        verdict=verdict,
        detail=detail,
        decisive=e.decisive,
        evidence=_record(e, cand.source, ref_name, ctx.alpha),
    )
    live_for_baseline = c.live if (ctx.stable_live and c.live is not None and ref_name == "stable") else None
    return result, (e.log_e, live_for_baseline)


def _step_goes_on(
    e: ev.Evidence, margin: float, step_floor: float, carried: bool, source: str, detail: str
) -> tuple[str, str]:
    """A step before the last, its duration over: the candidate may take the next step's traffic
    unless it looks clearly worse. With the evidence carried to the next step (the α plan), looking
    somewhat worse no longer holds the small step: holding at 10% gathers the same evidence five
    times slower, and the users a regression reaches before it is caught are about the requests
    the evidence needs, whatever the split. Promotion still needs the floor. Without the plan, the
    step holds while the candidate looks worse than the margin."""
    head = f"{e.kind} {_pct(e.rate_c)} vs {e.reference} {_pct(e.rate_s)} (n={e.n_c:,.0f} vs {e.n_s:,.0f})"
    if e.estimate <= margin:
        return "pass", f"{head}: not worse so far; promotion waits for ~{e.needed_n_c or 0:,} requests [{source}]"
    if carried and e.estimate < step_floor:
        worse = f"looks worse by {e.estimate * 100:.2g} points, not conclusive yet"
        return "pass", f"{head}: {worse}; the evidence goes on to the next step [{source}]"
    return "insufficient", detail


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _stable_seen(c: ComparisonInput, ctx: StepContext, ref_name: str) -> tuple[float, float] | None:
    """Stable's counts before this step's, disjoint from its reference: its prior. While stable
    serves live traffic, the steps passed or else the 10 minutes before the release; at 100%, where
    the steps passed are the reference, the minutes before the release."""
    before = _stable_before(c, ctx)
    if ctx.stable_live:
        seen = ctx.state.baseline.get(c.kind)
        return seen if seen is not None and seen[1] > 0 else before
    return before if ref_name == "stable (earlier steps)" else None


def _unjudged(
    kind: str, cand: Sample | None, base: dict[str, Any], unavailable: bool, why: str, span: float, failed: str | None
) -> CheckResult | None:
    """The result when there is nothing to judge: no histogram at all, or no candidate counts."""
    if kind == "slow" and unavailable:
        # Both versions answer and neither exports a latency histogram: nothing to compare, and
        # nothing against the candidate (`sluice doctor` warns about it).
        return CheckResult(
            **base, value=None, verdict="no_data", detail="slow: no latency histogram for either version",
            evidence={"unavailable": True},
        )  # fmt: skip
    if cand is None:
        if kind == "slow" and span < SHORT_SPAN and not failed:
            # The latency span begins when warmup ends: its first seconds may hold no scrape yet.
            return CheckResult(
                **base, value=None, verdict="insufficient", detail=f"{kind}: too early to count ({span:.0f}s)"
            )
        return CheckResult(**base, value=None, verdict="no_data", detail=f"{kind}: {why}")
    return None


def _reference(c: ComparisonInput, ctx: StepContext) -> tuple[Sample | None, str]:
    """Stable's sample to compare with: live over the same span, or at the 100% step (stable serves
    nobody now) its counts from the steps passed, or from before the release."""
    if ctx.stable_live:
        return c.live, "stable"
    saved = ctx.state.baseline.get(c.kind)
    if saved is not None and saved[1] >= MIN_LIVE_REFERENCE:
        return Sample(saved[0], saved[1], "earlier steps"), "stable (earlier steps)"
    if c.before is not None and c.before.n >= MIN_LIVE_REFERENCE:
        return c.before, "stable (before the release)"
    return c.live, "stable"


def _over_the_release(
    c: ComparisonInput,
    ctx: StepContext,
    reference: Sample,
    e: ev.Evidence,
    margin: float,
    detectable: float,
    verdict: str,
    detail: str,
) -> tuple[str, str]:
    """Promotion asks "is it good?" of everything the candidate served, against stable's record: its
    counts over the same spans and the minutes before the release. A failure stays per step: pooling
    adds no way to fail, so the false-alarm bound is unchanged; it only lets evidence gathered at
    10% and 50% count towards the floor, which a low-traffic service needs. Stable's minutes before
    the release pin its rate: the floor is relative to it, and the steps alone (a thousand stable
    requests at 1% errors hold ten) left "3x stable" unprovable at 100%, where stable's counts stop
    growing -- good versions on a service with 1% background errors failed on the evidence timeout."""
    assert c.cand is not None
    history = _history(c, ctx, reference)
    pooled = _pooled(c.cand, reference, ctx.stable_live, ctx.state, c.kind, history)
    if pooled is None:
        return verdict, detail
    whole_c, whole_s = pooled
    ref_name = "stable (since before the release)" if history is not None else "stable"
    e_all = ctx.memo(
        ev.judge, c.kind, min(whole_c.bad, whole_c.n), whole_c.n, min(whole_s.bad, whole_s.n), whole_s.n,
        alpha=ctx.alpha,
        margin=margin, detectable=detectable, decisive_gap=ev.DEFAULTS[c.kind].decisive_gap, reference=ref_name,
        times_stable=c.conf.times_stable,
    )  # fmt: skip
    if e_all.verdict == "pass" and c.cand.n >= MIN_STEP_REQUESTS:
        return "pass", e_all.sentence() + f" over the whole release [{c.cand.source}]"
    if e_all.verdict != "fail":
        return verdict, e.sentence() + f"; over the whole release: {e_all.sentence()} [{c.cand.source}]"
    return verdict, detail


def _record(e: ev.Evidence, source: str, ref_name: str, alpha: float) -> dict[str, Any]:
    """What an evaluation records of a comparison (the dashboard, `sluice status`, hooks)."""
    return {
        "kind": e.kind,
        "source": source,
        "reference": ref_name,
        "bad": [round(e.bad_c, 3), round(e.bad_s, 3)],
        "requests": [round(e.n_c, 3), round(e.n_s, 3)],
        "estimate": e.estimate,
        "interval": [e.lower, e.upper],
        "margin": e.margin,
        "detectable": e.detectable,
        "e_value": e.e_value if math.isfinite(e.e_value) else None,
        "log_e": e.log_e,
        "alpha": alpha,
        "decisive": e.decisive,
        "needed_requests": e.needed_n_c,
        "times_stable": e.times_stable,
        "log_wealth": e.log_wealth,
        "fail_at": e.fail_at,
    }


def _step_floor(defaults: ev.CheckDefaults, detectable: float) -> tuple[float, float]:
    """The floor a step before the last may pass on while the candidate looks worse than the margin:
    absolute, and at least the kind's `step_floor`. Promotion owes the floor relative to stable
    (app/core/judge/floor.py); asking it of every step held good versions at 10% until the evidence
    timeout when chance made them look a few tenths of a point worse (1% of simulated A/A releases)."""
    return max(detectable, defaults.step_floor or detectable), 1.0


def margin_and_floor(defaults: ev.CheckDefaults, margin: float | None, detectable: float | None) -> tuple[float, float]:
    """The comparison's margin and evidence floor, always with 0 <= margin < detectable < 1: the
    floor defaults to twice the margin (at least the kind's default), and stays under 100%."""
    margin = min(defaults.margin if margin is None else max(margin, 0.0), MAX_MARGIN)
    if detectable is None or not margin < detectable < 1:
        detectable = max(defaults.detectable, 2 * margin)
        if detectable >= 1:
            detectable = (margin + 1) / 2
    return margin, detectable


def plus(total: tuple[float, float] | None, sample: Sample) -> tuple[float, float]:
    bad, n = total if total is not None else (0.0, 0.0)
    return (bad + sample.bad, n + sample.n)


def _stable_before(c: ComparisonInput, ctx: StepContext) -> tuple[float, float] | None:
    """Stable's (bad, requests) over the minutes before the release: kept in the state from the first
    step, or this evaluation's reading."""
    return ctx.state.before.get(c.kind) or ((c.before.bad, c.before.n) if c.before is not None else None)


def _history(c: ComparisonInput, ctx: StepContext, reference: Sample) -> tuple[float, float] | None:
    """Stable's counts from the minutes before the release (saved at the first step), unless they
    are already the reference (a release whose first step is 100%)."""
    before = _stable_before(c, ctx)
    if before is None or before[1] <= 0 or (c.before is not None and reference is c.before):
        return None
    return before


def _pooled(
    cand: Sample,
    reference: Sample,
    stable_live: bool,
    state: JudgeState,
    kind: str,
    history: tuple[float, float] | None = None,
) -> tuple[Sample, Sample] | None:
    """The candidate's counts over the whole release (the steps passed and this one) and stable's
    over the same spans, plus `history` (stable before the release); None when no step has been
    passed yet (nothing to pool)."""
    carried = state.candidate.get(kind)
    if carried is None or carried[1] <= 0:
        return None
    whole_c = Sample(carried[0] + cand.bad, carried[1] + cand.n, cand.source)
    # While stable serves, `reference` is its live sample over this step's span, added to the steps
    # passed; at 100% it is already stable's counts from the steps passed (the baseline).
    stable = plus(state.baseline.get(kind), reference) if stable_live else (reference.bad, reference.n)
    bad, n = plus(history, Sample(*stable, reference.source))
    return whole_c, Sample(bad, n, reference.source)


def looks_broken(results: list[CheckResult]) -> bool:
    """A comparison not failed yet whose candidate already looks worse by its decisive gap (e.g.
    half its answers errors, on a few requests), or whose evidence of being worse is halfway to
    failing it (in log terms): worth looking at again before the interval is up. The test is
    anytime-valid, so looking sooner costs no false alarms; it shortens the wait between the
    evidence being in and the next look."""
    for r in results:
        e = r.evidence or {}
        defaults, estimate = ev.DEFAULTS.get(str(e.get("kind"))), e.get("estimate")
        if r.verdict not in ("insufficient", "pass") or defaults is None or not isinstance(estimate, int | float):
            continue
        if r.verdict == "insufficient" and estimate >= defaults.decisive_gap:
            return True
        wealth, fail_at = e.get("log_wealth"), e.get("fail_at")
        building = isinstance(wealth, float) and isinstance(fail_at, float) and wealth >= fail_at / 2
        if building and estimate > e.get("margin", 0.0):
            return True
    return False


def _points(rate: float) -> str:
    return f"{100 * rate:.3g} points"
