"""The `latency` comparison: the candidate's whole latency histogram against stable's, at one evaluation.

Pure (no I/O). The statistics are app/core/judge/distribution.py; app/core/judge/judging.py runs this
beside the share comparisons (errors, 4xx, slow) with the same alpha and the same rules for steps:
a step before the last passes once the candidate served some responses in it and does not look
more than the margin slower; promotion needs the data to rule out `detectable` slower, over the
whole release (each step's histogram against stable's over the same span). A failure stays per
step. See docs/judging.md ("The whole latency distribution").
"""

from __future__ import annotations

import math
from typing import Any

from app.core.config.policy import LatencyConfig
from app.core.judge.compare import MIN_STEP_REQUESTS, StepContext
from app.core.judge.distribution import Histogram, LatencyEvidence, clean, judge_latency, sentence, total
from app.core.judge.samples import MIN_LIVE_REFERENCE, no_histogram
from app.core.models import CarriedHistogram, CheckResult, JudgeState, VersionCounts

NAME = "latency-vs-stable"


def histogram(v: VersionCounts | None) -> Histogram | None:
    """A version's latency histogram with a finite bound, or None."""
    m = v.metrics if v is not None else None
    if m is None or not any(math.isfinite(b) for b, _ in m.buckets):
        return None
    return clean(list(m.buckets))


def add(a: Histogram | None, b: Histogram) -> Histogram:
    """Bound-wise sum of two cumulative histograms; `b` alone when the bounds differ."""
    if not a or [x for x, _ in a] != [x for x, _ in b]:
        return list(b)
    return [(x, ca + cb) for (x, ca), (_, cb) in zip(a, b, strict=True)]


def keep(state: JudgeState, name: str, h: Histogram) -> None:
    """Store a histogram in the judge state (its +Inf bucket as the total)."""
    state.histograms[name] = CarriedHistogram(finite=[(b, c) for b, c in h if math.isfinite(b)], total=total(h))


def carried(state: JudgeState, name: str) -> Histogram | None:
    """A histogram the judge state carries, +Inf bucket restored; None if none."""
    kept = state.histograms.get(name)
    if kept is None:
        return None
    return [*kept.finite, (math.inf, kept.total)]


def compare_latency(
    conf: LatencyConfig,
    ctx: StepContext,
    cand_v: VersionCounts,
    stable_v: VersionCounts,
    before: VersionCounts | None,
    failed: str | None,
    unavailable: bool,
) -> CheckResult:
    """The comparison at this evaluation; adds this step's histograms to `ctx.state` (if the step ends now).
    `unavailable`: neither version's counts over the step have a latency histogram (not merely none
    over the latency span, which right after warmup may hold no scrape yet)."""
    base: dict[str, Any] = dict(
        name=NAME, step=ctx.step, at=ctx.now, threshold=f"<= {conf.margin:.0%} slower than stable"
    )
    cand, live = histogram(cand_v), histogram(stable_v)
    if cand is None and live is None and unavailable and not failed:
        # Neither version exports a latency histogram: nothing to compare (`sluice doctor` warns).
        return CheckResult(
            **base, value=None, verdict="no_data", detail="latency: no latency histogram for either version",
            evidence={"unavailable": True},
        )  # fmt: skip
    if cand is None or total(cand) <= 0:
        if failed:
            return CheckResult(**base, value=None, verdict="no_data", detail=f"latency: {failed}")
        if cand is None and live is None:
            return CheckResult(**base, value=None, verdict="insufficient", detail="latency: too early to count")
        return CheckResult(**base, value=None, verdict="insufficient", detail="latency: no candidate responses yet")
    reference, ref_name = _reference(ctx, live, before)
    if (reference is None or total(reference) <= 0) and not ctx.stable_live:
        # Stable serves nobody and no histogram of it was kept (a release started before this
        # comparison existed): nothing to compare with, and nothing against the candidate.
        return CheckResult(
            **base, value=None, verdict="no_data", evidence={"unavailable": True},
            detail="latency: no stable histogram from the earlier steps to compare with at 100%",
        )  # fmt: skip
    if reference is None and no_histogram(stable_v):
        # Stable answers but exports no histogram (an older version): nothing to compare with.
        return CheckResult(
            **base, value=None, verdict="no_data", evidence={"unavailable": True},
            detail="latency: stable exports no latency histogram to compare with",
        )  # fmt: skip
    if reference is None or total(reference) <= 0:
        return CheckResult(
            **base, value=None, verdict="insufficient", detail="latency: no stable responses to compare with yet"
        )
    step_s = live if ctx.stable_live and ref_name == "stable" else None
    e = ctx.memo(judge_latency, cand, reference, alpha=ctx.alpha, margin=conf.margin, detectable=conf.detectable)
    verdict, detail = e.verdict, sentence(e, ref_name)
    if verdict == "insufficient" and not ctx.final and total(cand) >= MIN_STEP_REQUESTS and e.log_e <= 0:
        verdict = "pass"
        detail = f"{detail}; not slower so far (promotion waits for the evidence)"
    if verdict == "insufficient" and ctx.final:
        verdict, detail = _over_the_release(conf, ctx, cand, step_s, verdict, detail)
    _carry(ctx.state, cand, step_s)
    return CheckResult(
        **base,
        value=e.shift,
        verdict=verdict,
        detail=detail + " [Prometheus]",
        decisive=e.decisive,
        evidence=_record(e, ref_name),
    )


def _reference(ctx: StepContext, live: Histogram | None, before: VersionCounts | None) -> tuple[Histogram | None, str]:
    """Stable's histogram over the same span; at the 100% step (stable serves nobody) its histogram
    from the steps passed, or from before the release."""
    if ctx.stable_live:
        return live, "stable"
    saved = carried(ctx.state, "stable")
    if saved and total(saved) >= MIN_LIVE_REFERENCE:
        return saved, "stable (earlier steps)"
    old = histogram(before)
    if old is not None and total(old) >= MIN_LIVE_REFERENCE:
        return old, "stable (before the release)"
    return live, "stable"


def _carry(state: JudgeState, cand: Histogram, live: Histogram | None) -> None:
    """What the state carries if the step ends now (`state` is this evaluation's copy): this step's
    histograms added to those of the steps passed."""
    keep(state, "candidate", add(carried(state, "candidate"), cand))
    if live is not None:
        keep(state, "stable", add(carried(state, "stable"), live))


def _over_the_release(
    conf: LatencyConfig, ctx: StepContext, step_c: Histogram, step_s: Histogram | None, verdict: str, detail: str
) -> tuple[str, str]:
    """Promotion's floor on everything the candidate served against stable over the same spans
    (app/core/judge/compare.py's pooling, for histograms): pooling adds no way to fail. Reads the
    carried histograms before this evaluation adds to them."""
    carried_c, carried_s = carried(ctx.state, "candidate"), carried(ctx.state, "stable")
    if not carried_c or not carried_s:
        return verdict, detail
    whole_c = add(carried_c, step_c)
    whole_s = add(carried_s, step_s) if step_s is not None else carried_s
    if len(whole_c) != len(carried_c):  # the bounds changed: nothing to pool
        return verdict, detail
    pooled = judge_latency(whole_c, whole_s, alpha=ctx.alpha, margin=conf.margin, detectable=conf.detectable)
    if pooled.verdict == "pass" and total(step_c) >= MIN_STEP_REQUESTS:
        return "pass", sentence(pooled) + " over the whole release"
    return verdict, detail + f"; over the whole release: {sentence(pooled)}"


def _record(e: LatencyEvidence, ref_name: str) -> dict[str, Any]:
    """What an evaluation records of the comparison (dashboard, `sluice status`, hooks)."""
    return {
        "kind": "latency",
        "source": "Prometheus",
        "reference": ref_name,
        "requests": [round(e.n[0], 3), round(e.n[1], 3)],
        "slower_by": e.shift,
        "p50": list(e.p50),
        "margin": e.margin,
        "detectable": e.detectable,
        "log_e": e.log_e,
        "log_e_floor": e.log_e_floor,
        "alpha": e.alpha,
        "decisive": e.decisive,
    }
