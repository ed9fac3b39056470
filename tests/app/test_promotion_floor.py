"""Promotion's floor is relative to stable (issue #22, item 1), and responses slower than the
clients' timeout count as errors (item 4). Checked on the decision core, without Redis or HTTP."""

from __future__ import annotations

import math
import random

from app.core.decide import decide
from app.core.judge.evidence import check_alpha, judge
from app.core.judge.floor import log_e_against_floor
from app.core.models import JudgeState, Observations, ResponseCounts, VersionCounts
from tests.app.test_decide import T0, counts, evidence, policy, release

AT_100 = dict(step=2, desired_weights={"1.0.370": 0, "1.0.371": 100})


def at_100(baseline_errors: float, baseline_n: float) -> dict:
    state = JudgeState(
        first_traffic_at=T0,
        slow_under=0.5,
        baseline={"errors": (baseline_errors, baseline_n), "4xx": (0.0, baseline_n), "slow": (0.0, baseline_n)},
    )
    return dict(AT_100, judge=state)


def errors_result(d):
    return next(r for r in d.results if r.name == "errors-vs-stable")


def test_five_times_stables_errors_is_never_promoted_and_fails_at_the_evidence_timeout():
    # Stable answers 0.3% errors; the candidate 1.5% at 100%: worse by 1.2 points, and on 600
    # requests not yet conclusively worse than the 0.25-point margin. The old 5-point floor
    # promoted it; the floor max(3x stable, stable + 1 point) holds it, then fails it.
    p = policy(checks=[], judge={"slow": {"enabled": False}, "client_errors": {"enabled": False}})
    obs = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(600, errors=9), counts(0)))
    d = decide(release(**at_100(60, 20000)), p, obs, T0 + 60)
    assert d.kind == "hold", d.reason
    assert errors_result(d).verdict == "insufficient" and "looks worse by 1.2 points" in errors_result(d).detail
    assert errors_result(d).evidence["times_stable"] == 3.0
    # The last step has no duration: judge.evidence_timeout's default is then 15 minutes.
    late = obs.model_copy(update={"at": T0 + 900})
    d = decide(release(**at_100(60, 20000)), p, late, T0 + 900)
    assert d.kind == "fail" and "judge.evidence_timeout" in d.reason


def test_a_candidate_as_good_as_stable_is_promoted_once_the_floor_is_ruled_out():
    p = policy(checks=[], judge={"slow": {"enabled": False}, "client_errors": {"enabled": False}})
    few = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(1000, errors=3), counts(0)))
    d = decide(release(**at_100(60, 20000)), p, few, T0 + 60)
    assert d.kind == "hold" and "requests needed" in errors_result(d).detail
    enough = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(12000, errors=36), counts(0)))
    d = decide(release(**at_100(60, 20000)), p, enough, T0 + 60)
    assert d.kind == "promote", d.reason
    assert "rules out more than max(3x" in errors_result(d).detail


def test_the_floor_is_three_times_stable_at_one_percent_and_a_point_over_it_at_a_tenth():
    c = math.log(1 / check_alpha(0.01, 3, 3))
    n = 500_000  # enough of both that the floor, not the noise, decides

    def rules_out(rate_c: float, rate_s: float) -> bool:
        return log_e_against_floor(rate_c * n, n, rate_s * n, n, 0.01, 3.0) >= c

    # Stable at 1%: the floor is 3x stable = 3%.
    assert rules_out(0.025, 0.01) and not rules_out(0.032, 0.01)
    # Stable at 0.1%: 3x would be 0.3%; the floor is stable + 1 point = 1.1%.
    assert rules_out(0.009, 0.001) and not rules_out(0.013, 0.001)
    # `times_stable: 1` and a larger `detectable` give back an absolute floor (a low-traffic service).
    alpha = check_alpha(0.01, 3, 3)
    assert judge("errors", 1, 300, 3, 2700, alpha=alpha, detectable=0.05, times_stable=1).verdict == "pass"
    assert judge("errors", 1, 300, 3, 2700, alpha=alpha).verdict == "insufficient"


def test_the_floor_stays_anytime_valid_for_a_candidate_exactly_at_it():
    # True rates on the floor (3% vs 1%), looked at every 200 candidate requests up to 20,000:
    # the evidence must (almost) never claim the candidate is better than the floor.
    rng = random.Random(7)
    alpha = 0.01
    passed = 0
    for _ in range(20):
        bc = bs = nc = ns = 0
        while nc < 20_000:
            bc += sum(rng.random() < 0.03 for _ in range(200))
            bs += sum(rng.random() < 0.01 for _ in range(1800))
            nc, ns = nc + 200, ns + 1800
            if log_e_against_floor(bc, nc, bs, ns, 0.01, 3.0) >= math.log(1 / alpha):
                passed += 1
                break
    assert passed <= 2  # at most alpha in expectation: 0.2 of 20


def with_latency(n: float, errors: float, late: float) -> VersionCounts:
    """n responses, `late` of them slower than 2 s (the largest finite bound is 5 s)."""
    return VersionCounts(
        metrics=ResponseCounts(
            requests=n,
            by_class={"2xx": n - errors, "5xx": errors},
            buckets=[(0.1, n - late), (0.5, n - late), (2.0, n - late), (5.0, n), (float("inf"), n)],
        )
    )


def test_responses_slower_than_the_client_timeout_count_as_errors():
    # No 5xx at all, but 10% of the candidate's answers come after the clients gave up (2 s).
    steps = [{"weight": 10, "duration": "30s"}, {"weight": 100}]
    obs = Observations(
        at=T0 + 30,
        candidate_healthy=True,
        evidence=evidence(with_latency(2000, 0, 200), with_latency(18000, 0, 0)),
    )
    plain = policy(steps=steps, checks=[], judge={"slow": {"enabled": False}, "latency": {"enabled": False}})
    assert decide(release(), plain, obs, T0 + 30).kind == "advance"
    timed = policy(
        steps=steps,
        checks=[],
        judge={"slow": {"enabled": False}, "latency": {"enabled": False}, "client_timeout": "2s"},
    )
    d = decide(release(), timed, obs, T0 + 30)
    assert d.kind == "fail" and "errors-vs-stable" in d.reason
    assert errors_result(d).value == 0.1
    # A timeout between bucket bounds counts only what surely exceeded it (over the next bound up).
    between = policy(
        steps=steps,
        checks=[],
        judge={"slow": {"enabled": False}, "latency": {"enabled": False}, "client_timeout": "1s"},
    )
    assert errors_result(decide(release(), between, obs, T0 + 30)).value == 0.1
    # The `error_rate` guard (an SLO) counts them too.
    slo = [{"name": "errors", "type": "error_rate", "max": 0.05}]
    off = {
        "slow": {"enabled": False},
        "latency": {"enabled": False},
        "errors": {"enabled": False},
        "client_timeout": "2s",
    }
    d = decide(release(), policy(steps=steps, checks=slo, judge=off), obs, T0 + 30)
    assert d.kind == "fail" and "check 'errors' failed" in d.reason


def at_100_after_steps(before: tuple[float, float] | None) -> dict:
    """At 100% after two steps: stable served 1,000 requests with 10 errors (1%) beside the candidate,
    which served 300 with 3; `before`: stable's counts over the 10 minutes before the release."""
    state = JudgeState(
        first_traffic_at=T0,
        slow_under=0.5,
        baseline={"errors": (10.0, 1000.0), "4xx": (0.0, 1000.0), "slow": (0.0, 1000.0)},
        candidate={"errors": (3.0, 300.0), "4xx": (0.0, 300.0), "slow": (0.0, 300.0)},
        before={} if before is None else {"errors": before, "4xx": (0.0, before[1]), "slow": (0.0, before[1])},
    )
    return dict(AT_100, judge=state)


def test_a_good_version_beside_stables_one_percent_errors_is_promoted_on_stables_record():
    # Scenario good-background-errors: both versions answer 1% errors. At 100% stable's counts stop
    # growing; the steps' thousand requests (ten errors) cannot pin its rate, so "3x stable" could not
    # be ruled out and the good version failed on the evidence timeout. Stable's minutes before the
    # release pin it: the floor is reached.
    p = policy(checks=[], judge={"slow": {"enabled": False}, "client_errors": {"enabled": False}})
    obs = Observations(at=T0 + 120, candidate_healthy=True, evidence=evidence(counts(3000, errors=30), counts(0)))
    held = decide(release(**at_100_after_steps(None)), p, obs, T0 + 120)
    assert held.kind == "hold", held.reason
    promoted = decide(release(**at_100_after_steps((240.0, 24000.0))), p, obs, T0 + 120)
    assert promoted.kind == "promote", promoted.reason
    detail = errors_result(promoted).detail
    assert "stable (since before the release) 1.0%" in detail and "rules out more than max(3x" in detail, detail


def test_stables_record_before_the_release_does_not_let_three_times_its_errors_through():
    # The same record, a candidate at 3.3% (3.3x stable's 1%): never promoted, whatever its count.
    p = policy(checks=[], judge={"slow": {"enabled": False}, "client_errors": {"enabled": False}})
    for n in (3000, 30000):
        obs = Observations(
            at=T0 + 120, candidate_healthy=True, evidence=evidence(counts(n, errors=0.033 * n), counts(0))
        )
        d = decide(release(**at_100_after_steps((240.0, 24000.0))), p, obs, T0 + 120)
        assert d.kind in ("hold", "fail"), d.reason
