"""The decision core's promises, checked without Redis or HTTP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.config.policy import CheckConfig, PolicyConfig, StepConfig
from app.core.decide import decide, fail_back
from app.core.models import (
    CheckObservation,
    EvidenceObservation,
    JudgeState,
    Observations,
    Release,
    ResponseCounts,
    RouterCounts,
    VersionCounts,
)

T0 = 1_700_000_000.0
BUCKETS = (0.1, 0.5, 1.0, float("inf"))


def policy(**kw) -> PolicyConfig:
    base = dict(
        name="canary",
        interval="5s",
        steps=[{"weight": 10, "duration": "30s"}, {"weight": 50, "duration": "30s"}, {"weight": 100}],
        checks=[
            {"name": "errors", "type": "error_rate", "max": 0.05},
            {"name": "fast", "type": "latency", "under": "500ms", "min": 0.9},
        ],
    )
    base.update(kw)
    return PolicyConfig.model_validate(base)


def release(**kw) -> Release:
    base = dict(
        id="r-1",
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0.370",
        target_version="1.0.371",
        policy="canary",
        state="running",
        step=0,
        step_started_at=T0,
        created_at=T0,
        updated_at=T0,
        desired_weights={"1.0.370": 90, "1.0.371": 10},
        judge=JudgeState(first_traffic_at=T0),
    )
    base.update(kw)
    return Release.model_validate(base)


def counts(n: float, errors: float = 0, client: float = 0, slow: float = 0) -> VersionCounts:
    """n responses of one version: `errors` 5xx, `client` 4xx, `slow` of them over 500 ms."""
    ok = n - errors - client
    fast = n - slow
    return VersionCounts(
        metrics=ResponseCounts(
            requests=n,
            by_class={"2xx": ok, "4xx": client, "5xx": errors},
            buckets=[(0.1, fast * 0.8), (0.5, fast), (1.0, n), (float("inf"), n)],
        )
    )


def evidence(candidate: VersionCounts, stable: VersionCounts, since: float = T0) -> EvidenceObservation:
    return EvidenceObservation(since=since, candidate=candidate, stable=stable)


def good(at: float, n: float = 2000) -> Observations:
    """Plenty of traffic on both versions, neither worse: the judge has its evidence."""
    return Observations(at=at, candidate_healthy=True, evidence=evidence(counts(n), counts(9 * n)))


def test_pending_release_starts_at_first_step_weights():
    d = decide(release(state="pending", step=-1), policy(), Observations(at=T0), T0)
    assert d.kind == "start" and d.step == 0
    assert d.weights == {"1.0.370": 90, "1.0.371": 10}
    assert d.judge is not None and d.judge.first_traffic_at == T0


def test_step_holds_until_its_duration_has_passed():
    assert decide(release(), policy(), good(T0 + 10), T0 + 10).kind == "hold"
    d = decide(release(), policy(), good(T0 + 30), T0 + 30)
    assert d.kind == "advance" and d.step == 1 and d.weights == {"1.0.370": 50, "1.0.371": 50}


def test_advancing_carries_evidence_and_stable_baseline_to_the_next_step():
    d = decide(release(), policy(), good(T0 + 30), T0 + 30)
    assert d.judge is not None
    assert set(d.judge.evidence) == {"errors", "4xx", "slow"}
    assert d.judge.baseline["errors"] == (0.0, 18000.0)


def test_last_step_compares_with_stable_from_earlier_steps():
    judge = JudgeState(
        first_traffic_at=T0, slow_under=0.5, baseline={"errors": (10.0, 20000.0), "4xx": (0, 20000.0), "slow": (0, 2e4)}
    )
    at_100 = dict(step=2, desired_weights={"1.0.370": 0, "1.0.371": 100}, judge=judge)
    obs = Observations(at=T0 + 1, candidate_healthy=True, evidence=evidence(counts(12000, errors=6), counts(0)))
    d = decide(release(**at_100), policy(), obs, T0 + 1)
    assert d.kind == "promote" and d.weights == {"1.0.370": 0, "1.0.371": 100}
    errors = next(r for r in d.results if r.name == "errors-vs-stable")
    assert errors.evidence is not None and errors.evidence["reference"] == "stable (earlier steps)"
    bad = Observations(at=T0 + 1, candidate_healthy=True, evidence=evidence(counts(2000, errors=200), counts(0)))
    d = decide(release(**at_100), policy(), bad, T0 + 1)
    assert d.kind == "fail" and "errors-vs-stable" in d.reason and "earlier steps" in d.reason


def test_promotion_counts_what_the_candidate_served_at_every_step_on_a_low_traffic_service():
    # 2 req/s in all: the 100% step alone has 120 requests, too few to rule out a 5-point
    # regression; with the 130 it served at 10% and 50% (against stable's 1,300 over the same
    # spans) it has enough, so the release is promoted instead of waiting for a timeout. (A
    # service this small states an absolute floor: the default, relative to stable's rate, needs
    # thousands of requests.)
    p = policy(checks=[], judge={"slow": {"enabled": False}, "errors": {"detectable": 0.05, "times_stable": 1}})
    at_100 = dict(step=2, desired_weights={"1.0.370": 0, "1.0.371": 100})
    alone = JudgeState(first_traffic_at=T0, baseline={"errors": (0.0, 1300.0), "4xx": (0.0, 1300.0)})
    obs = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(120), counts(0)))
    d = decide(release(**at_100, judge=alone), p, obs, T0 + 60)
    assert d.kind == "hold" and "not enough traffic yet" in d.reason
    pooled = alone.model_copy(update={"candidate": {"errors": (0.0, 130.0), "4xx": (0.0, 130.0)}})
    d = decide(release(**at_100, judge=pooled), p, obs, T0 + 60)
    assert d.kind == "promote", d.reason
    errors = next(r for r in d.results if r.name == "errors-vs-stable")
    assert "n=250 vs 1,300" in errors.detail and "over the whole release" in errors.detail
    # Pooling never passes what this step's own counts show to be worse: they fail it.
    bad = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(120, errors=30), counts(0)))
    assert decide(release(**at_100, judge=pooled), p, bad, T0 + 60).kind == "fail"


def test_a_margin_of_a_whole_share_still_judges_instead_of_crashing():
    # `max_over_stable: 1` on error_rate ("never mind stable") made the margin 1 and the floor 2:
    # every tick raised. The comparison now caps the margin at 95 points and judges.
    p = policy(checks=[{"name": "errors", "type": "error_rate", "max_over_stable": 1}])
    d = decide(release(), p, good(T0 + 30), T0 + 30)
    assert d.kind == "advance", d.reason
    worst = Observations(at=T0 + 30, candidate_healthy=True, evidence=evidence(counts(2000, 2000), counts(18000)))
    d = decide(release(), p, worst, T0 + 30)
    assert d.kind == "fail" and "errors-vs-stable" in d.reason and "95 points" in d.reason


def test_prometheus_down_is_missing_data_ruled_by_on_no_data_not_a_wait_for_traffic():
    # Prometheus unreachable: no latency counts for either version (HAProxy still counts errors).
    # The slow comparison and the latency guard have no data; on_no_data says what that means, and
    # no_data_timeout bounds a hold, instead of "waiting for evidence" until the evidence timeout.
    down = ResponseCounts(error="Prometheus error: cannot reach http://127.0.0.1:9", backend_failed=True)
    obs = Observations(
        at=T0 + 40,
        candidate_healthy=True,
        evidence=EvidenceObservation(
            since=T0,
            candidate=VersionCounts(metrics=down, router=RouterCounts(requests=200, by_class={"2xx": 200})),
            stable=VersionCounts(metrics=down, router=RouterCounts(requests=1800, by_class={"2xx": 1800})),
        ),
    )
    fresh = release(judge=JudgeState(first_traffic_at=T0))  # no slow bound yet
    d = decide(fresh, policy(on_no_data="fail"), obs, T0 + 40)
    assert d.kind == "fail", d.reason
    assert "had no data" in d.reason and "cannot reach" in d.reason
    d = decide(fresh, policy(on_no_data="hold", no_data_timeout="30s"), obs, T0 + 40)
    assert d.kind == "hold" and "has no data" in d.reason and d.no_data_since == T0 + 40
    later = fresh.model_copy(update={"no_data_since": T0 + 40})
    d = decide(later, policy(on_no_data="hold", no_data_timeout="30s"), obs, T0 + 71)
    assert d.kind == "fail" and "no_data_timeout" in d.reason
    # With a bound already set, the comparison and the latency guard say the same.
    bound = release(judge=JudgeState(first_traffic_at=T0, slow_under=0.5))
    d = decide(bound, policy(on_no_data="fail"), obs, T0 + 40)
    assert d.kind == "fail" and "cannot reach" in d.reason
    # pass: what had data (HAProxy's counts: errors and 4xx no worse than stable's) decides.
    d = decide(fresh, policy(on_no_data="pass"), obs, T0 + 40)
    assert d.kind == "advance", d.reason
    assert {r.name for r in d.results if r.verdict == "pass"} >= {"errors-vs-stable", "4xx-vs-stable"}


def test_advancing_carries_the_candidates_counts_for_the_promotion_floor():
    d = decide(release(), policy(), good(T0 + 30), T0 + 30)
    assert d.judge is not None and d.judge.candidate["errors"] == (0.0, 2000.0)


def test_a_candidate_answering_mostly_errors_fails_at_the_first_evaluation():
    obs = Observations(at=T0 + 2, candidate_healthy=True, evidence=evidence(counts(8, errors=5), counts(72)))
    d = decide(release(), policy(tolerance=3), obs, T0 + 2)
    assert d.kind == "fail" and d.weights == {"1.0.370": 100}
    failed = [r for r in d.results if r.verdict == "fail"]
    assert failed[0].name == "errors-vs-stable" and failed[0].decisive
    assert "worse by more than" in d.reason and "step 1" in d.reason


def test_a_small_regression_fails_on_evidence_not_on_one_unlucky_window():
    # 3% vs 0.5% errors: one evaluation with 100 requests is not conclusive, 2000 are.
    few = Observations(at=T0 + 5, candidate_healthy=True, evidence=evidence(counts(100, errors=3), counts(900, 4.5)))
    assert decide(release(), policy(), few, T0 + 5).kind == "hold"
    many = Observations(at=T0 + 60, candidate_healthy=True, evidence=evidence(counts(2000, 60), counts(18000, 90)))
    d = decide(release(), policy(), many, T0 + 60)
    assert d.kind == "fail" and "errors-vs-stable" in d.reason


def test_equal_error_rates_and_a_shared_slowdown_pass():
    both = Observations(
        at=T0 + 30,
        candidate_healthy=True,
        evidence=evidence(counts(2000, errors=20, slow=600), counts(18000, errors=180, slow=5400)),
    )
    p = policy(checks=[])  # no absolute latency limit: a spike that slows both is not the candidate's fault
    assert decide(release(), p, both, T0 + 30).kind == "advance"


def test_4xx_and_slow_responses_count():
    client = Observations(at=T0 + 30, candidate_healthy=True, evidence=evidence(counts(500, client=500), counts(4500)))
    d = decide(release(), policy(checks=[]), client, T0 + 30)
    assert d.kind == "fail" and "4xx-vs-stable" in d.reason
    slow = Observations(at=T0 + 30, candidate_healthy=True, evidence=evidence(counts(2000, slow=200), counts(18000)))
    d = decide(release(), policy(checks=[]), slow, T0 + 30)
    assert d.kind == "fail" and "slow-vs-stable" in d.reason


def test_ignored_4xx_codes_are_not_counted():
    cand = VersionCounts(
        metrics=ResponseCounts(requests=1000, by_class={"2xx": 900, "4xx": 100}, by_code={"200": 900, "404": 100})
    )
    stable = VersionCounts(metrics=ResponseCounts(requests=9000, by_class={"2xx": 9000}, by_code={"200": 9000}))
    obs = Observations(at=T0 + 30, candidate_healthy=True, evidence=evidence(cand, stable))
    p = policy(checks=[], judge={"slow": {"enabled": False}, "client_errors": {"ignore_codes": [404]}})
    assert decide(release(), p, obs, T0 + 30).kind == "advance"
    p = policy(checks=[], judge={"slow": {"enabled": False}})
    assert decide(release(), p, obs, T0 + 30).kind == "fail"


def test_too_little_traffic_holds_and_never_passes_then_times_out():
    few = Observations(at=T0 + 40, candidate_healthy=True, evidence=evidence(counts(5), counts(45)))
    d = decide(release(), policy(), few, T0 + 40)
    assert d.kind == "hold" and "waiting for evidence" in d.reason
    d = decide(release(), policy(), few, T0 + 601)
    assert d.kind == "fail" and "not enough evidence" in d.reason


def test_traffic_minimum_waits_for_traffic_instead_of_failing():
    p = policy(checks=[{"name": "traffic", "type": "request_rate", "min": 1000}])
    d = decide(release(), p, good(T0 + 60, n=100), T0 + 60)
    assert d.kind == "hold" and "below the minimum" in d.reason


def test_router_view_counts_proxy_errors_and_health_flaps():
    router = RouterCounts(requests=200, by_class={"2xx": 190}, proxy_errors=10)
    stable = RouterCounts(requests=1800, by_class={"2xx": 1800})
    obs = good(T0 + 30)
    assert obs.evidence is not None
    obs.evidence.candidate.router, obs.evidence.stable.router = router, stable
    d = decide(release(), policy(), obs, T0 + 30)
    assert d.kind == "fail" and "HAProxy" in d.reason
    flapping = good(T0 + 10)
    assert flapping.evidence is not None
    flapping.evidence.candidate.router = RouterCounts(requests=50, by_class={"2xx": 50}, down_transitions=2)
    flapping.evidence.stable.router = RouterCounts(requests=450, by_class={"2xx": 450})
    d = decide(release(), policy(tolerance=5), flapping, T0 + 10)
    assert d.kind == "fail" and "it is crashing" in d.reason
    # failing health checks that stable passes, without being taken down yet
    flapping.evidence.candidate.router = RouterCounts(requests=50, by_class={"2xx": 50}, failed_checks=3)
    assert decide(release(), policy(tolerance=5), flapping, T0 + 10).kind == "fail"
    flapping.evidence.stable.router = RouterCounts(requests=450, by_class={"2xx": 450}, failed_checks=2)
    assert decide(release(), policy(tolerance=5), flapping, T0 + 10).kind != "fail"  # a shared network blip


def test_failure_budget_is_not_reset_by_a_passing_evaluation():
    p = policy(tolerance=1)
    down = good(T0 + 5)
    down.candidate_healthy, down.health_detail = False, "DOWN"
    d1 = decide(release(), p, down, T0 + 5)
    assert d1.kind == "hold" and d1.consecutive_failures == 1
    d2 = decide(release(consecutive_failures=1), p, good(T0 + 10), T0 + 10)
    assert d2.kind == "hold" and d2.consecutive_failures == 1  # a pass keeps the count
    d3 = decide(release(consecutive_failures=1), p, down, T0 + 15)
    assert d3.kind == "fail" and "health" in d3.reason


def test_query_checks_keep_thresholds_and_no_data_rules():
    p = policy(
        checks=[{"name": "queue", "type": "query", "metric": "queue", "max": 10}],
        on_no_data="hold",
        no_data_timeout="1m",
    )
    obs = good(T0 + 40)
    obs.checks = [CheckObservation(name="queue", value=None, error="no data: the query returned no series")]
    d = decide(release(), p, obs, T0 + 40)
    assert d.kind == "hold" and d.no_data_since == T0 + 40
    d = decide(release(no_data_since=T0 + 40), p, obs, T0 + 100)
    assert d.kind == "fail" and "no data" in d.reason
    obs.checks = [CheckObservation(name="queue", value=50)]
    assert decide(release(), p, obs, T0 + 40).kind == "fail"
    obs.checks = [CheckObservation(name="queue", value=5)]
    assert decide(release(), p, obs, T0 + 40).kind == "advance"


def test_no_data_timeout_counts_the_time_spent_observing():
    """A frozen Prometheus: each tick's queries take 20 s to time out. `no_data_timeout: 15s` must
    fail the release once 15 s have passed on the wall clock since the first observation without
    data began, not 15 s of tick `now`s (which are taken before the queries)."""
    p = policy(
        checks=[{"name": "queue", "type": "query", "metric": "queue", "max": 10}],
        on_no_data="hold",
        no_data_timeout="15s",
    )
    frozen = good(T0 + 40)
    frozen.checks = [CheckObservation(name="queue", value=None, error="timed out")]
    frozen.completed_at = T0 + 60  # the queries began at T0 + 40 and timed out 20 s later
    d = decide(release(), p, frozen, T0 + 40)
    assert d.kind == "fail" and "no data for 20s" in d.reason
    # Observing that took no time: the clock starts at the first observation without data.
    quick = frozen.model_copy(update={"completed_at": T0 + 40.2})
    d = decide(release(), p, quick, T0 + 40)
    assert d.kind == "hold" and d.no_data_since == T0 + 40
    later = quick.model_copy(update={"at": T0 + 54, "completed_at": T0 + 55.5})
    assert decide(release(no_data_since=T0 + 40), p, later, T0 + 54).kind == "fail"


def test_no_data_pass_never_passes_a_step_without_counts():
    obs = Observations(at=T0 + 40, candidate_healthy=True)  # Prometheus and the router both silent
    d = decide(release(), policy(on_no_data="pass"), obs, T0 + 40)
    assert d.kind == "hold"


def test_warmup_keeps_the_first_seconds_out_of_the_latency_evidence():
    from app.core.judge.judging import evidence_since, latency_since

    p = policy(judge={"warmup": "20s"})
    assert evidence_since(release()) == T0  # errors count from the first request
    assert latency_since(release(), p) == T0 + 20
    assert latency_since(release(step=1, step_started_at=T0 + 60), p) == T0 + 60
    # 100% slow while warming up: the slow comparison and the latency SLO wait, errors are judged.
    obs = Observations(at=T0 + 10, candidate_healthy=True, evidence=evidence(counts(40, slow=40), counts(360)))
    assert obs.evidence is not None
    obs.evidence.latency_since = T0 + 20
    d = decide(release(), p, obs, T0 + 10)
    assert d.kind == "hold" and "warming up" in d.reason
    assert next(r for r in d.results if r.name == "errors-vs-stable").verdict != "fail"


def test_unhealthy_candidate_fails_even_when_metrics_pass():
    obs = good(T0 + 40)
    obs.candidate_healthy, obs.health_detail = False, "DOWN"
    d = decide(release(), policy(), obs, T0 + 40)
    assert d.kind == "fail" and "health" in d.reason


def test_an_slo_breach_shared_with_stable_does_not_blame_the_candidate():
    # A slow dependency: both versions have half their responses over 500 ms (the SLO asks 90% under).
    both = Observations(
        at=T0 + 10, candidate_healthy=True, evidence=evidence(counts(400, slow=200), counts(3600, slow=1800))
    )
    d = decide(release(), policy(), both, T0 + 10)
    assert d.kind == "hold" and "step in progress" in d.reason  # not failed: waits for its duration
    fast = next(r for r in d.results if r.name == "fast")
    assert fast.verdict == "pass" and "shared cause" in fast.detail


def test_absolute_guard_fails_on_evidence():
    # 50% under 500 ms where the SLO asks 90% and stable, over the same span, keeps it (99%).
    obs = Observations(
        at=T0 + 10, candidate_healthy=True, evidence=evidence(counts(400, slow=200), counts(3600, slow=36))
    )
    d = decide(release(), policy(), obs, T0 + 10)
    assert d.kind == "fail"
    fast = next(r for r in d.results if r.name == "fast")
    assert fast.verdict == "fail" and "beyond >= 0.9" in fast.detail


def test_request_volume_end_condition():
    p = policy(steps=[{"weight": 10, "duration": "10s", "requests": 1000}, {"weight": 100}])
    obs = good(T0 + 60)
    obs.step_requests = 999
    assert decide(release(), p, obs, T0 + 60).kind == "hold"
    obs.step_requests = 1000
    assert decide(release(), p, obs, T0 + 60).kind == "advance"
    obs.step_requests = 5000
    assert decide(release(), p, obs, T0 + 5).kind == "hold"  # duration not reached yet


def test_pause_step_pauses_until_resumed():
    p = policy(steps=[{"weight": 10, "pause": True}, {"weight": 100}])
    assert decide(release(), p, good(T0 + 1), T0 + 1).kind == "pause"
    assert decide(release(resumed_step=0), p, good(T0 + 1), T0 + 1).kind == "advance"


def test_terminal_and_paused_releases_do_nothing():
    for state in ("succeeded", "failed", "aborted", "paused"):
        assert decide(release(state=state), policy(), good(T0 + 99), T0 + 99).kind == "hold"


# --- properties -----------------------------------------------------------------------------------

weights = st.integers(min_value=0, max_value=100)
values = st.one_of(st.none(), st.just(float("nan")), st.floats(min_value=-1, max_value=2))
sizes = st.sampled_from([0, 3, 40, 500, 5000])
shares = st.sampled_from([0.0, 0.005, 0.02, 0.5, 1.0])


@st.composite
def version_counts(draw):
    if draw(st.integers(0, 5)) == 0:
        return VersionCounts()
    n = draw(sizes)
    return counts(n, errors=n * draw(shares), slow=n * draw(shares))


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 5))
    steps = [
        StepConfig(
            weight=draw(weights),
            duration=draw(st.sampled_from([None, 10.0, 30.0])),
            requests=draw(st.sampled_from([None, 100])),
            pause=draw(st.booleans()),
        )
        for _ in range(n - 1)
    ]
    steps.append(StepConfig(weight=100, duration=draw(st.sampled_from([None, 10.0]))))
    checks = [
        CheckConfig(name="c1", type="error_rate", max=0.05),
        CheckConfig(name="c2", type="request_rate", min=10),
        CheckConfig(name="c3", type="query", metric="m", max=draw(st.sampled_from([1.0, 5.0]))),
    ]
    p = PolicyConfig(
        name="p",
        steps=steps,
        checks=checks,
        tolerance=draw(st.integers(0, 2)),
        on_no_data=draw(st.sampled_from(["fail", "hold", "pass"])),
    )
    state = draw(st.sampled_from(["pending", "running", "running", "running", "paused"]))
    step = -1 if state == "pending" else draw(st.integers(0, n - 1))
    rel = release(
        state=state,
        step=step,
        consecutive_failures=draw(st.integers(0, 3)),
        resumed_step=draw(st.sampled_from([-1, step])),
    )
    now = T0 + draw(st.floats(0, 100))
    obs = Observations(
        at=now,
        checks=[CheckObservation(name="c3", value=draw(values))] if draw(st.booleans()) else [],
        step_requests=draw(st.one_of(st.none(), st.floats(0, 1000))),
        candidate_healthy=draw(st.sampled_from([None, True, False])),
        evidence=None if draw(st.integers(0, 4)) == 0 else evidence(draw(version_counts()), draw(version_counts())),
    )
    return rel, p, obs, now


@settings(max_examples=600, deadline=None)
@given(scenarios())
def test_properties_of_every_decision(scenario):
    rel, p, obs, now = scenario
    d = decide(rel, p, obs, now)
    allowed = {s.weight for s in p.steps} | {0}
    if d.weights is not None:
        assert sum(d.weights.values()) == 100
        assert d.weights.get(rel.target_version, 0) in allowed
    if d.kind in ("promote", "advance"):
        # never promote or advance while a check fails or lacks evidence; a query check's missing
        # data passes only under on_no_data: pass, and a comparison only when neither version has
        # the signal at all
        for r in d.results:
            unavailable = (r.evidence or {}).get("unavailable")
            assert r.verdict == "pass" or (r.verdict == "no_data" and (p.on_no_data == "pass" or unavailable))
        names = {r.name for r in d.results}
        assert {"c1", "c2", "errors-vs-stable", "4xx-vs-stable"} <= names
        # evidence means candidate traffic
        assert obs.evidence is not None and obs.evidence.candidate.metrics is not None
        assert (obs.evidence.candidate.metrics.requests or 0) >= 20
        step = p.steps[rel.step]
        if step.duration is not None:
            assert now - (rel.step_started_at or now) >= step.duration
        if step.requests is not None:
            assert obs.step_requests is not None and obs.step_requests >= step.requests
    if d.kind == "promote":
        assert rel.step == len(p.steps) - 1 and d.weights == {rel.source_version: 0, rel.target_version: 100}
    if d.kind == "fail":
        assert d.weights == {rel.source_version: 100}
        assert d.reason
    if rel.state == "paused":
        assert d.kind == "hold"


def test_identical_versions_never_fail():
    for n in (10, 100, 1000, 10000):
        for rate in (0.0, 0.01, 0.1):
            same = Observations(
                at=T0 + 30,
                candidate_healthy=True,
                evidence=evidence(
                    counts(n, errors=n * rate, slow=n * rate), counts(9 * n, errors=9 * n * rate, slow=9 * n * rate)
                ),
            )
            assert decide(release(), policy(checks=[]), same, T0 + 30).kind != "fail"


def test_reason_names_every_failing_check():
    obs = Observations(at=T0 + 5, candidate_healthy=True, evidence=evidence(counts(200, 120, slow=150), counts(1800)))
    d = decide(release(), policy(), obs, T0 + 5)
    assert d.kind == "fail"
    assert d.reason.startswith("check 'errors-vs-stable' failed: errors 60.0% vs stable 0.0%")
    assert "also failed:" in d.reason and "'slow-vs-stable'" in d.reason and "'fast'" in d.reason


def test_fail_back_puts_all_traffic_on_stable_and_keeps_the_failure_count():
    rel = release(consecutive_failures=2, desired_weights={"1.0.370": 50, "1.0.371": 50})
    failed = fail_back(rel, "router: no server for 1.0.371")
    assert failed.kind == "fail" and failed.weights == {"1.0.370": 100}
    assert failed.consecutive_failures == 2 and failed.reason == "router: no server for 1.0.371"
    aborted = fail_back(rel, "superseded", kind="abort", consecutive_failures=0)
    assert aborted.kind == "abort" and aborted.weights == {"1.0.370": 100} and aborted.consecutive_failures == 0


# --- known bugs (failing on purpose; see the report of the `testfix` branch) ------------------------


def _latency(n: float, buckets: list[tuple[float, float]]) -> VersionCounts:
    return VersionCounts(metrics=ResponseCounts(requests=n, by_class={"2xx": n}, buckets=buckets))


def test_identical_versions_pass_when_stable_is_often_over_the_largest_bucket():
    """15% of both versions' responses take over 1 s, the largest finite bucket: the automatic slow
    bound finds no bucket that at most 10% of stable's responses exceed. Identical versions with
    18,000 stable responses must still pass, not wait for "50 stable responses" until
    judge.evidence_timeout fails the release. Same with a histogram that has only the +Inf bucket."""
    inf = float("inf")
    shapes = [
        ([(0.1, 1000), (0.5, 1500), (1.0, 1700), (inf, 2000)], [(0.1, 9000), (0.5, 13500), (1.0, 15300), (inf, 18000)]),
        ([(inf, 2000)], [(inf, 18000)]),
    ]
    for cand, stable in shapes:
        obs = Observations(
            at=T0 + 30, candidate_healthy=True, evidence=evidence(_latency(2000, cand), _latency(18000, stable))
        )
        d = decide(release(), policy(checks=[]), obs, T0 + 30)
        assert d.kind == "advance", d.reason
        assert decide(release(), policy(checks=[]), obs, T0 + 700).kind != "fail"


def test_a_latency_check_without_a_histogram_does_not_claim_there_is_no_traffic():
    """A metrics provider without latency buckets (Datadog: `response_counts` has none) and a policy
    with a `latency` check: the candidate served 2,000 requests, so the check must not say "no
    candidate traffic yet", and must not hold the step until judge.evidence_timeout fails it."""
    no_buckets = Observations(
        at=T0 + 30, candidate_healthy=True, evidence=evidence(_latency(2000, []), _latency(18000, []))
    )
    d = decide(release(), policy(), no_buckets, T0 + 30)
    fast = next(r for r in d.results if r.name == "fast")
    assert "no candidate traffic" not in (fast.detail or ""), fast.detail
    assert decide(release(), policy(), no_buckets, T0 + 700).kind != "fail"


def test_a_latency_span_too_short_to_count_holds_rather_than_failing_on_no_data():
    """Right after warmup the latency span [first traffic + warmup, now] can be shorter than a scrape
    interval: Prometheus has no counts for it, though the candidate served 2,000 requests over the
    step. That is "not enough evidence yet" (hold), not missing data: under `on_no_data: fail` it
    must not fail the release (seen in the demo e2e as `slow-vs-stable: the candidate has no counts`)."""
    obs = good(T0 + 16)
    assert obs.evidence is not None
    obs.evidence.latency_since = T0 + 15.5
    obs.evidence.candidate_latency = ResponseCounts(error="no data: the query returned no series")
    obs.evidence.stable_latency = ResponseCounts(error="no data: the query returned no series")
    p = policy(checks=[], on_no_data="fail", judge={"warmup": "15.5s"})
    d = decide(release(), p, obs, T0 + 16)
    assert d.kind == "hold", d.reason
    # The whole-distribution comparison is too early as well: both versions do export a histogram
    # (the step's counts have one), so "no latency histogram for either version" would be false.
    latency = next(r for r in d.results if r.name == "latency-vs-stable")
    assert latency.verdict == "insufficient", (latency.verdict, latency.detail)
    assert "no latency histogram" not in (latency.detail or "")


SEGMENT_STEP = {"segment": {"header": {"name": "User-Agent", "regex": "Chrome"}}, "duration": "30s"}


def test_a_segment_steps_failure_names_its_segment_not_a_zero_share():
    # Issue 23: "at step 1 (0% of traffic on 1.0.372)" told the on-call nothing: the step sent
    # Chrome's requests, not 0% of them.
    obs = Observations(at=T0 + 2, candidate_healthy=True, evidence=evidence(counts(8, errors=5), counts(72)))
    segment_policy = policy(steps=[SEGMENT_STEP, {"weight": 100}])
    d = decide(release(desired_weights={"1.0.370": 100}), segment_policy, obs, T0 + 2)
    assert d.kind == "fail"
    assert "at step 1 (segment header User-Agent ~ /Chrome/ on 1.0.371)" in d.reason
    assert "0% of traffic" not in d.reason


def test_a_weighted_steps_failure_still_says_its_share():
    obs = Observations(at=T0 + 2, candidate_healthy=True, evidence=evidence(counts(8, errors=5), counts(72)))
    d = decide(release(), policy(), obs, T0 + 2)
    assert "at step 1 (10% of traffic on 1.0.371)" in d.reason


def test_a_segment_steps_start_names_its_segment_not_a_zero_share():
    segment_policy = policy(steps=[SEGMENT_STEP, {"weight": 100}])
    d = decide(release(state="pending", step=-1), segment_policy, Observations(at=T0), T0)
    assert d.kind == "start"
    assert d.reason == "start: segment header User-Agent ~ /Chrome/ to 1.0.371", d.reason
