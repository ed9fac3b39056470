"""The `latency-vs-stable` comparison through the decision core (app.core.decide.decide), on
histograms: what fails, what passes, its words, its reference at 100 %, what it does without one."""

from __future__ import annotations

import math

from app.core.decide import decide
from app.core.judge.latency import carried, keep
from app.core.models import EvidenceObservation, JudgeState, Observations, ResponseCounts, VersionCounts
from tests.app.test_decide import T0, policy, release

BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5)


def spread(n: float, low: float, high: float) -> VersionCounts:
    """n responses spread evenly over [low, high] seconds, counted into BOUNDS."""
    cumulative = [(b, n * min(max((b - low) / (high - low), 0.0), 1.0)) for b in BOUNDS]
    buckets = [*cumulative, (math.inf, n)]
    return VersionCounts(metrics=ResponseCounts(requests=n, by_class={"2xx": n}, buckets=buckets))


def judged(cand: VersionCounts, stable: VersionCounts, **kw):
    obs = Observations(
        at=T0 + 31, candidate_healthy=True, evidence=EvidenceObservation(since=T0, candidate=cand, stable=stable)
    )
    d = decide(release(**kw), policy(checks=[], judge={"warmup": "0s"}), obs, T0 + 31)
    return d, next(r for r in d.results if r.name == "latency-vs-stable")


def test_a_version_35_percent_slower_fails_with_its_reason():
    d, r = judged(spread(400, 0.0405, 0.1215), spread(3600, 0.030, 0.090))
    assert d.kind == "fail" and r.verdict == "fail"
    assert (
        "latency: candidate" in r.detail and "% slower than stable across the distribution (p50 81 vs 62 ms" in r.detail
    )
    assert "n=400 vs 3,600): more than 10% slower" in r.detail
    assert r.value is not None and 0.3 < r.value < 0.45


def test_a_version_a_few_percent_slower_passes_and_carries_its_histograms():
    d, r = judged(spread(400, 0.0309, 0.0927), spread(3600, 0.030, 0.090))
    assert d.kind == "advance" and r.verdict == "pass"
    assert d.judge is not None and carried(d.judge, "stable") is not None
    assert carried(d.judge, "candidate")[-1] == (math.inf, 400)


def test_at_100_percent_the_reference_is_stable_from_earlier_steps():
    judge = JudgeState(first_traffic_at=T0)
    keep(judge, "stable", spread(3000, 0.030, 0.090).metrics.buckets)
    keep(judge, "candidate", spread(300, 0.030, 0.090).metrics.buckets)
    at_100 = dict(step=2, desired_weights={"1.0.370": 0, "1.0.371": 100}, judge=judge)
    _, slow = judged(spread(2000, 0.045, 0.135), spread(0, 0.03, 0.09), **at_100)
    assert slow.verdict == "fail" and "stable (earlier steps)" in slow.detail
    _, fine = judged(spread(2000, 0.030, 0.090), spread(0, 0.03, 0.09), **at_100)
    assert fine.verdict == "pass" and "rules out 25% slower or worse" in fine.detail


def test_without_a_histogram_to_compare_with_nothing_is_held_against_the_candidate():
    plain = VersionCounts(metrics=ResponseCounts(requests=3600, by_class={"2xx": 3600}, buckets=[]))
    _, r = judged(spread(400, 0.03, 0.09), plain)
    assert r.verdict == "no_data" and (r.evidence or {}).get("unavailable")
    at_100 = dict(step=2, desired_weights={"1.0.370": 0, "1.0.371": 100})
    _, r = judged(spread(2000, 0.03, 0.09), spread(0, 0.03, 0.09), **at_100)
    assert r.verdict == "no_data" and "earlier steps" in r.detail
