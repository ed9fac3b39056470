"""The decision core's promises, checked without Redis or HTTP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.config import CheckConfig, PolicyConfig, StepConfig
from app.decide import decide, fail_back
from app.models import CheckObservation, Observations, Release

T0 = 1_700_000_000.0


def policy(**kw) -> PolicyConfig:
    base = dict(
        name="canary",
        interval="5s",
        steps=[{"weight": 10, "duration": "30s"}, {"weight": 50, "duration": "30s"}, {"weight": 100}],
        checks=[
            {"name": "errors", "type": "error_rate", "max": 0.01},
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
    )
    base.update(kw)
    return Release.model_validate(base)


def good(at: float) -> Observations:
    return Observations(
        at=at,
        checks=[CheckObservation(name="errors", value=0.0), CheckObservation(name="fast", value=0.99)],
        candidate_healthy=True,
    )


def test_pending_release_starts_at_first_step_weights():
    d = decide(release(state="pending", step=-1), policy(), Observations(at=T0), T0)
    assert d.kind == "start" and d.step == 0
    assert d.weights == {"1.0.370": 90, "1.0.371": 10}


def test_step_holds_until_its_duration_has_passed():
    assert decide(release(), policy(), good(T0 + 10), T0 + 10).kind == "hold"
    d = decide(release(), policy(), good(T0 + 30), T0 + 30)
    assert d.kind == "advance" and d.step == 1 and d.weights == {"1.0.370": 50, "1.0.371": 50}


def test_last_step_passing_promotes_to_full_candidate():
    d = decide(release(step=2), policy(), good(T0 + 1), T0 + 1)
    assert d.kind == "promote" and d.weights == {"1.0.370": 0, "1.0.371": 100}


def test_failing_check_fails_at_once_with_reason_and_stable_weights():
    obs = good(T0 + 5)
    obs.checks[0] = CheckObservation(name="errors", value=0.3, query="q")
    d = decide(release(), policy(), obs, T0 + 5)
    assert d.kind == "fail"
    assert d.weights == {"1.0.370": 100}
    assert "errors" in d.reason and "0.3" in d.reason and "step 1" in d.reason
    failed = [r for r in d.results if r.verdict == "fail"]
    assert [r.name for r in failed] == ["errors"] and failed[0].threshold == "<= 0.01"


def test_tolerance_allows_that_many_consecutive_failures():
    p = policy(tolerance=2)
    obs = good(T0 + 5)
    obs.checks[1] = CheckObservation(name="fast", value=0.5)
    d1 = decide(release(), p, obs, T0 + 5)
    assert d1.kind == "hold" and d1.consecutive_failures == 1
    d2 = decide(release(consecutive_failures=1), p, obs, T0 + 10)
    assert d2.kind == "hold" and d2.consecutive_failures == 2
    d3 = decide(release(consecutive_failures=2), p, obs, T0 + 15)
    assert d3.kind == "fail"


def test_no_data_hold_never_advances_and_times_out():
    p = policy(on_no_data="hold", no_data_timeout="1m")
    obs = good(T0 + 40)
    obs.checks[0] = CheckObservation(name="errors", value=None, error="no data: the query returned no series")
    d = decide(release(), p, obs, T0 + 40)
    assert d.kind == "hold" and d.no_data_since == T0 + 40
    d = decide(release(no_data_since=T0 + 40), p, obs, T0 + 100)
    assert d.kind == "fail" and "no data" in d.reason


def test_no_data_fail_fails_and_no_data_pass_advances():
    obs = good(T0 + 40)
    obs.checks[0] = CheckObservation(name="errors", value=None, error="Prometheus error: timeout")
    assert decide(release(), policy(on_no_data="fail"), obs, T0 + 40).kind == "fail"
    assert decide(release(), policy(on_no_data="pass"), obs, T0 + 40).kind == "advance"


def test_unhealthy_candidate_fails_even_when_metrics_pass():
    obs = good(T0 + 40)
    obs.candidate_healthy, obs.health_detail = False, "DOWN"
    d = decide(release(), policy(), obs, T0 + 40)
    assert d.kind == "fail" and "health" in d.reason


def test_relative_check_compares_with_stable_in_same_window():
    p = policy(checks=[{"name": "errors", "type": "error_rate", "max_over_stable": 0.01}])
    ok = Observations(at=T0 + 40, checks=[CheckObservation(name="errors", value=0.025, stable_value=0.02)])
    assert decide(release(), p, ok, T0 + 40).kind == "advance"
    bad = Observations(at=T0 + 40, checks=[CheckObservation(name="errors", value=0.04, stable_value=0.02)])
    d = decide(release(), p, bad, T0 + 40)
    assert d.kind == "fail" and "stable" in d.reason


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
        CheckConfig(name="c2", type="request_rate", min=10, max_over_stable=draw(st.sampled_from([None, 5.0]))),
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
        checks=[
            CheckObservation(name=c, value=draw(values), stable_value=draw(values))
            for c in draw(st.lists(st.sampled_from(["c1", "c2"]), unique=True))
        ],
        step_requests=draw(st.one_of(st.none(), st.floats(0, 1000))),
        candidate_healthy=draw(st.sampled_from([None, True, False])),
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
        # never promote or advance while a check fails, or lacks data unless on_no_data is pass
        assert all(r.verdict == "pass" or (r.verdict == "no_data" and p.on_no_data == "pass") for r in d.results)
        assert {r.name for r in d.results} >= {"c1", "c2"}
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


def test_reason_names_every_failing_check():
    obs = Observations(
        at=T0 + 5,
        checks=[CheckObservation(name="errors", value=0.3), CheckObservation(name="fast", value=0.4)],
        candidate_healthy=True,
    )
    d = decide(release(), policy(), obs, T0 + 5)
    assert d.kind == "fail"
    assert d.reason.startswith("check 'errors' failed: 0.3 is above the maximum 0.01")
    assert d.reason.endswith("; also failed: 'fast' (0.4)")


def test_fail_back_puts_all_traffic_on_stable_and_keeps_the_failure_count():
    rel = release(consecutive_failures=2, desired_weights={"1.0.370": 50, "1.0.371": 50})
    failed = fail_back(rel, "router: no server for 1.0.371")
    assert failed.kind == "fail" and failed.weights == {"1.0.370": 100}
    assert failed.consecutive_failures == 2 and failed.reason == "router: no server for 1.0.371"
    aborted = fail_back(rel, "superseded", kind="abort", consecutive_failures=0)
    assert aborted.kind == "abort" and aborted.weights == {"1.0.370": 100} and aborted.consecutive_failures == 0
