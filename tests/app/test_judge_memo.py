"""The worker's memory of the judge's arithmetic (app/release/judge_memo.py): a release whose counts
did not change is not judged again, its decision is the one computed afresh, and what depends on
time (the step's duration) is still decided on time."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.judge.plan import Spending
from app.core.models import EvidenceObservation, Observations, Release
from app.release.judge_memo import JudgeMemo, digest
from tests.support.simulate import T0, Rates, Scenario, _serve, _Version, apply, new_release, run_release

STEPS = [{"weight": 10, "duration": "2m"}, {"weight": 50, "duration": "2m"}, {"weight": 100, "duration": "1m"}]
POLICY = PolicyConfig.model_validate({"name": "defaults", "interval": "10s", "steps": STEPS})
SCENARIOS = {
    "same": Scenario(
        stable=Rates(errors=0.01, client=0.05, slow=0.03), candidate=Rates(errors=0.01, client=0.05, slow=0.03)
    ),
    "errors": Scenario(stable=Rates(errors=0.01), candidate=Rates(errors=0.08)),
    "slower": Scenario(stable=Rates(slow=0.02), candidate=Rates(slow=0.02, scale=1.6)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_releases_decide_the_same_with_the_memo(name: str) -> None:
    """Whole simulated releases, the memo shared across them: every outcome as computed afresh."""
    memo = JudgeMemo()
    for seed in range(4):
        fresh = run_release(POLICY, SCENARIOS[name], np.random.default_rng(seed))
        remembered = run_release(POLICY, SCENARIOS[name], np.random.default_rng(seed), memo=memo)
        assert remembered == fresh
    assert memo.misses > 0


def running(seed: int = 7) -> tuple[Release, EvidenceObservation]:
    """A release at its first step with two minutes of both versions' counts."""
    release = new_release(POLICY)
    release = apply(release, decide(release, POLICY, Observations(at=T0), T0), T0)
    rng, cand, stable = np.random.default_rng(seed), _Version(), _Version()
    _serve(rng, cand, Rates(errors=0.01), np.ones(3), 600, True)
    _serve(rng, stable, Rates(errors=0.01), np.ones(3), 5400, True)
    assert release.step_started_at is not None
    evidence = EvidenceObservation(
        since=release.step_started_at, candidate=cand.counts(True), stable=stable.counts(True)
    )
    evidence.stable_before = stable.counts(True)
    return release, evidence


def test_unchanged_counts_are_not_judged_again_but_the_step_still_ends_on_time() -> None:
    release, evidence = running()
    memo = JudgeMemo()
    early = decide(release, POLICY, Observations(at=T0 + 60, evidence=evidence), T0 + 60, memo)
    computed = memo.misses
    assert early.kind == "hold" and computed > 0
    # The same counts after the step's two minutes: nothing recomputed, and the step ends.
    late = decide(release, POLICY, Observations(at=T0 + 130, evidence=evidence), T0 + 130, memo)
    assert memo.misses == computed and memo.hits >= computed
    fresh = decide(release, POLICY, Observations(at=T0 + 130, evidence=evidence), T0 + 130)
    assert late.kind == "advance"
    assert late.model_dump() == fresh.model_dump()


def test_a_changed_count_is_judged_again() -> None:
    release, evidence = running()
    memo = JudgeMemo()
    decide(release, POLICY, Observations(at=T0 + 60, evidence=evidence), T0 + 60, memo)
    computed = memo.misses
    assert evidence.candidate.router is not None
    evidence.candidate.router.by_class["5xx"] += 1  # one more error the router saw (what errors are judged on)
    decide(release, POLICY, Observations(at=T0 + 70, evidence=evidence), T0 + 70, memo)
    assert memo.misses > computed


def test_the_digest_tells_apart_what_the_statistics_read() -> None:
    plan = Spending(log_active=0.0, idle=0.5, alpha=0.01)
    base = digest(round, (0.1, 10.0), {"plan": plan})
    assert digest(round, (0.1, 10.0), {"plan": Spending(log_active=0.0, idle=0.5, alpha=0.01)}) == base
    assert digest(round, (0.1 + 1e-16, 10.0), {"plan": plan}) != base
    assert digest(round, (0.1, 10.0), {"plan": Spending(log_active=0.0, idle=0.5, alpha=0.02)}) != base
    assert digest(abs, (0.1, 10.0), {"plan": plan}) != base


def test_an_argument_whose_repr_hides_its_value_is_not_remembered() -> None:
    class Opaque:
        def __init__(self, x: float) -> None:
            self.x = x

    memo = JudgeMemo()
    assert memo(lambda o: o.x, Opaque(1.0)) == 1.0
    assert memo(lambda o: o.x, Opaque(2.0)) == 2.0
    assert len(memo) == 0


def test_the_memo_is_bounded() -> None:
    memo = JudgeMemo(max_entries=3)
    for x in range(10):
        assert memo(float, x) == x
    assert len(memo) == 3
    assert memo(float, 9) == 9 and memo.hits == 1
