"""A held release's reason is the latest evaluation's: its countdown moves (issue 23: the demo's
segment step showed "13s left" for three evaluations, the first hold's words kept)."""

from __future__ import annotations

from app.core.decide import decide
from app.core.models import EvidenceObservation, Observations
from app.release.engine import decided
from tests.app.test_decide import T0, counts, evidence, policy, release


def _held(rel, at: float):
    d = decide(rel, policy(), _good(at), at)
    assert d.kind == "hold"
    return d, decided(rel, d, at)


def _good(at: float) -> Observations:
    return Observations(at=at, candidate_healthy=True, evidence=evidence(counts(2000), counts(18000)))


def test_the_step_countdown_moves_with_each_evaluation():
    rel = release(reason="step in progress: 25s left")
    first, rel = _held(rel, T0 + 10)
    assert rel.reason == first.reason == "step in progress: 20s left"
    second, rel = _held(rel, T0 + 12)
    assert rel.reason == "step in progress: 18s left"
    third, rel = _held(rel, T0 + 14)
    assert rel.reason == "step in progress: 16s left"


def test_the_warmup_countdown_moves_with_each_evaluation():
    # Latency is not judged during the candidate's first 15 s (judge.warmup): the wait says how long.
    rel = release()
    reasons = []
    for at in (T0 + 2, T0 + 4, T0 + 6):
        obs = Observations(
            at=at,
            candidate_healthy=True,
            evidence=EvidenceObservation(since=T0, candidate=counts(2000), stable=counts(18000), latency_since=T0 + 15),
        )
        d = decide(rel, policy(), obs, at)
        assert d.kind == "hold"
        rel = decided(rel, d, at)
        reasons.append(rel.reason)
    assert [("13s left" in r, "11s left" in r, "9s left" in r) for r in reasons] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
