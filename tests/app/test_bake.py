"""The bake after promotion, as the pure core decides it (app/core/bake.py), without Redis or HTTP:
a promotion with `bake` leaves the release baking; evidence that the new stable is worse than the
previous version was before the release reverts; no evidence by the end ends the bake; too little
history never reverts; and two identical versions are rarely reverted (the policy's alpha)."""

from __future__ import annotations

import random

import pytest

from app.core.config.policy import PolicyConfig
from app.core.decide import decide, fail_back
from app.core.models import (
    Decision,
    EvidenceObservation,
    JudgeState,
    Observations,
    Release,
    ResponseCounts,
    VersionCounts,
)
from app.release.engine import decided

T0 = 1_700_000_000.0
OLD, NEW = "1.0.370", "1.0.371"


def policy(**kw) -> PolicyConfig:
    base = dict(
        name="canary",
        interval="5s",
        steps=[{"weight": 10, "duration": "30s"}, {"weight": 100, "duration": "30s"}],
        bake="30m",
    )
    base.update(kw)
    return PolicyConfig.model_validate(base)


def baking(started: float = T0 + 100, length: float = 1800.0) -> Release:
    return Release(
        id="r-1",
        application="shop",
        namespace="default",
        service="web",
        source_version=OLD,
        target_version=NEW,
        policy="canary",
        state="baking",
        step=1,
        step_started_at=T0 + 40,
        created_at=T0,
        updated_at=started,
        desired_weights={OLD: 0, NEW: 100},
        judge=JudgeState(first_traffic_at=T0 + 1, slow_under=0.5),
        bake_started_at=started,
        bake_until=started + length,
    )


def counts(n: float, errors: float = 0) -> VersionCounts:
    return VersionCounts(
        metrics=ResponseCounts(requests=n, by_class={"2xx": n - errors, "5xx": errors}, by_code={"200": n - errors})
    )


def observed(rel: Release, new: VersionCounts, before: VersionCounts | None, at: float) -> Observations:
    assert rel.bake_started_at is not None
    evidence = EvidenceObservation(since=rel.bake_started_at, candidate=new, stable_before=before)
    return Observations(at=at, evidence=evidence)


def test_a_promotion_with_a_bake_leaves_the_release_baking_not_finished() -> None:
    pol = policy()
    running = baking().model_copy(update={"state": "running", "bake_started_at": None, "bake_until": None})
    promote = Decision(kind="promote", weights={OLD: 0, NEW: 100}, bake_until=T0 + 200 + 1800, reason="ok")
    after = decided(running, promote, T0 + 200)
    assert (after.state, after.terminal, after.finished_at) == ("baking", False, None)
    assert (after.bake_started_at, after.bake_until) == (T0 + 200, T0 + 2000)
    # Without a bake, as before: succeeded and finished.
    plain = decided(running, promote.model_copy(update={"bake_until": None}), T0 + 200)
    assert (plain.state, plain.finished_at) == ("succeeded", T0 + 200)
    assert pol.judged_periods == 3 and policy(bake=None).judged_periods == 2


def test_a_regression_during_the_bake_reverts_to_the_previous_version_with_the_numbers() -> None:
    rel = baking()
    now = rel.bake_started_at + 300  # type: ignore[operator]
    decision = decide(rel, policy(), observed(rel, counts(400, errors=40), counts(6000, errors=18), now), now)
    assert decision.kind == "revert"
    assert decision.weights == {OLD: 100}  # all traffic on the previous version
    assert decision.reason.startswith(f"reverted during bake: errors 10.0% vs {OLD} before the release 0.3%")
    assert "(n=400 vs 6,000)" in decision.reason and "5m00s after promotion" in decision.reason
    failed = [r for r in decision.results if r.verdict == "fail"]
    assert [r.name for r in failed] == ["bake-errors"] and failed[0].evidence["requests"] == [400, 6000]
    after = decided(rel, decision, now)
    assert (after.state, after.desired_weights, after.finished_at) == ("failed", {OLD: 100}, now)


def test_no_regression_holds_with_the_time_left_then_the_bake_ends() -> None:
    rel = baking()
    start = rel.bake_started_at
    assert start is not None
    same = counts(3000, errors=9), counts(6000, errors=18)
    hold = decide(rel, policy(), observed(rel, *same, start + 600), start + 600)
    assert hold.kind == "hold" and hold.reason.startswith("baking: 20m00s left; errors 0.3% vs 1.0.370 before")
    verdicts = {r.name: r.verdict for r in hold.results}
    assert verdicts == {"bake-errors": "pass", "bake-4xx": "pass"}  # slow: only with judge.slow.under
    done = decide(rel, policy(), observed(rel, *same, start + 1800), start + 1800)
    assert done.kind == "baked" and done.reason.startswith(f"baked for 30m00s: no evidence that {NEW} is worse")
    after = decided(rel, done, start + 1800)
    assert (after.state, after.finished_at, after.desired_weights) == ("succeeded", start + 1800, {OLD: 0, NEW: 100})


def test_too_little_history_never_reverts() -> None:
    rel = baking()
    start = rel.bake_started_at
    assert start is not None
    # The previous version served 20 requests in the 30 minutes before the release: nothing to compare with.
    obs = observed(rel, counts(500, errors=250), counts(20), start + 60)
    decision = decide(rel, policy(), obs, start + 60)
    assert decision.kind == "hold"
    assert f"{OLD} served 20 requests before the release (fewer than 50): nothing to compare with" in decision.reason
    # Nor does a backend that answers nothing.
    assert decide(rel, policy(), observed(rel, VersionCounts(), None, start + 60), start + 60).kind == "hold"


def test_abort_or_supersede_during_the_bake_ends_it_and_keeps_the_new_version() -> None:
    rel = baking()
    for kind in ("abort", "fail"):
        ended = fail_back(rel, "superseded by release r-2 (1.0.372)", kind=kind)  # type: ignore[arg-type]
        assert ended.kind == "baked" and ended.weights is None
        assert ended.reason == "bake ended early: superseded by release r-2 (1.0.372)"
        assert decided(rel, ended, T0 + 500).state == "succeeded"


@pytest.mark.parametrize("rate", [0.005, 0.02])
def test_identical_versions_are_rarely_reverted(rate: float) -> None:
    """A/A: the new stable serves exactly like the previous one did. Over 200 simulated bakes of 30
    evaluations each, the reverts stay within the policy's alpha (1%) split over its periods."""
    rng = random.Random(7)
    pol = policy(interval="60s")
    reverted = 0
    for _ in range(200):
        rel = baking()
        start = rel.bake_started_at
        assert start is not None
        before_n = 6000
        before = counts(before_n, errors=sum(rng.random() < rate for _ in range(before_n)))
        n = errors = 0
        for i in range(1, 31):
            n += 200
            errors += sum(rng.random() < rate for _ in range(200))
            now = start + 60 * i
            if decide(rel, pol, observed(rel, counts(n, errors), before, now), now).kind == "revert":
                reverted += 1
                break
    assert reverted <= 2  # 1% of 200, split over 3 periods: ~0.7 expected at most


def test_a_bake_sees_a_regression_that_starts_minutes_after_promotion() -> None:
    """The version degrades 5 minutes into the bake (10% errors from then on): caught within minutes."""
    rel = baking()
    start = rel.bake_started_at
    assert start is not None
    before = counts(6000, errors=18)
    n = errors = 0
    for i in range(1, 31):
        n += 200
        errors += 0 if i <= 5 else 20
        now = start + 60 * i
        decision = decide(rel, policy(interval="60s"), observed(rel, counts(n, errors), before, now), now)
        if decision.kind == "revert":
            assert 6 <= i <= 9, i
            return
    raise AssertionError("the regression was never caught")


def test_slow_responses_are_baked_only_against_a_bound_the_policy_sets() -> None:
    """Latency across time moves with the machine's and network's load, which nothing cancels during a
    bake: the automatic bound (just above stable's usual latency) is not used; `judge.slow.under` is."""
    rel = baking()
    start = rel.bake_started_at
    assert start is not None

    def timed(n: float, slow: float) -> VersionCounts:  # `slow` of n over 25 ms, none over 500 ms
        buckets = [(0.025, n - slow), (0.5, n), (float("inf"), n)]
        return VersionCounts(metrics=ResponseCounts(requests=n, by_class={"2xx": n}, buckets=buckets))

    obs = observed(rel, timed(1000, 80), timed(6000, 60), start + 120)
    assert decide(rel, policy(), obs, start + 120).kind == "hold"  # 8% vs 1% over 25 ms: not judged
    tight = policy(judge={"slow": {"under": "25ms"}})
    decision = decide(rel, tight, obs, start + 120)
    assert decision.kind == "revert" and "slow 8.0% vs 1.0.370 before the release 1.0%" in decision.reason
    assert decide(rel, policy(judge={"slow": {"under": "500ms"}}), obs, start + 120).kind == "hold"
