"""The scenario suite's misbehaving service and the harness's scoring, without servers."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from werkzeug.test import Client

from app.cli.demo.scenario_service import ScenarioApp, ScenarioSettings, create_app
from scenarios.catalog import FAST, SCENARIOS, Scenario
from scenarios.harness import client_view, judge_result


def app(**env: str) -> Client:
    return Client(create_app({"SCN_VERSION": "1.0.1", "SCN_LATENCY_MS": "0", **env}))


def codes(client: Client, n: int) -> list[int]:
    return [client.get("/").status_code for _ in range(n)]


def test_fault_rates_are_exact_counters_and_the_version_is_a_header() -> None:
    c = app(SCN_ERROR_RATE="0.3", SCN_CLIENT_ERROR_RATE="0.1", SCN_CLIENT_ERROR_CODE="400")
    got = codes(c, 100)
    assert got.count(500) == 30
    assert got.count(400) + got.count(500) + got.count(200) == 100
    assert c.get("/").headers["X-Version"] == "1.0.1"
    metrics = c.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{app="scn",code="500",version="1.0.1"} 30.0' in metrics


def test_everything_404_and_series_initialised_at_zero() -> None:
    c = app(SCN_CLIENT_ERROR_RATE="1")
    metrics = c.get("/metrics").get_data(as_text=True)
    assert 'code="200",version="1.0.1"} 0.0' in metrics and 'code="500",version="1.0.1"} 0.0' in metrics
    assert set(codes(c, 10)) == {404}


def test_metrics_stop_after_first_traffic_while_serving_goes_on() -> None:
    c = app(SCN_METRICS_STOP_AFTER_S="0")
    assert c.get("/metrics").status_code == 200  # before any traffic: still exported
    assert c.get("/").status_code == 200
    assert c.get("/metrics").status_code == 404
    assert c.get("/").status_code == 200 and c.get("/healthz").status_code == 200


def test_timeouts_sleep_and_record_a_slow_200() -> None:
    c = app(SCN_TIMEOUT_RATE="1", SCN_TIMEOUT_S="0.05")
    started = time.perf_counter()
    assert c.get("/").status_code == 200
    assert time.perf_counter() - started >= 0.05
    assert 'http_request_duration_seconds_bucket{app="scn",le="0.05",version="1.0.1"} 0.0' in c.get(
        "/metrics"
    ).get_data(as_text=True)


def test_crash_after_requests_and_warmup_and_shared_spike(tmp_path) -> None:
    crashed = []
    settings = ScenarioSettings(
        service="scn", version="1.0.1", latency_ms=0, crash_after_requests=3, warmup_s=60, warmup_latency_ms=20
    )
    c = Client(ScenarioApp(settings, crash=lambda: crashed.append(True)))
    started = time.perf_counter()
    codes(c, 3)
    assert time.perf_counter() - started >= 0.06  # 3 x 20 ms of warm-up
    time.sleep(0.2)
    assert crashed == [True]

    spike = tmp_path / "spike"
    c = app(SCN_SPIKE_FILE=str(spike))
    spike.write_text("60")
    started = time.perf_counter()
    c.get("/")
    assert time.perf_counter() - started >= 0.06


def test_settings_are_validated() -> None:
    with pytest.raises(RuntimeError, match="SCN_VERSION"):
        ScenarioSettings.from_env({})
    with pytest.raises(RuntimeError, match="out of range"):
        ScenarioSettings.from_env({"SCN_VERSION": "1", "SCN_ERROR_RATE": "1.5"})
    assert ScenarioSettings.from_env({"SCN_VERSION": "1", "SCN_ERROR_RATE": "0.015"}).error_rate == Fraction(3, 200)


def test_catalog_is_a_suite_a_careful_sre_would_write() -> None:
    assert len(SCENARIOS) >= 20 and len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert 5 <= len(FAST) <= 6
    for s in SCENARIOS:
        ScenarioSettings.from_env({"SCN_VERSION": "1", **s.env("stable")})
        ScenarioSettings.from_env({"SCN_VERSION": "1", **s.env("candidate")})
        assert (s.expected == "rolled_back") == (s.deadline_s is not None), s.name


def test_scoring() -> None:
    bad = Scenario("x", "", "rolled_back", deadline_s=4)
    assert judge_result(bad, "rolled_back", 3.9) == (True, "right")
    assert judge_result(bad, "rolled_back", 4.3) == (False, "late")
    assert judge_result(bad, "promoted", None) == (False, "wrong")
    either = Scenario("y", "", "either")
    assert judge_result(either, "held", None) == (False, "wrong")
    short = Scenario("z", "", "short_of_evidence")
    assert judge_result(short, "promoted", None) == (True, "right")
    timed_out = "not enough evidence to judge 1.0.1 after 181s at step 3 (100% of traffic on 1.0.1; ...)"
    assert judge_result(short, "rolled_back", 263.0, timed_out) == (True, "right")
    failed_by_a_check = "check 'errors-vs-stable' failed: errors 3.0% vs stable 0.0% ..."
    assert judge_result(short, "rolled_back", 40.0, failed_by_a_check) == (False, "wrong")
    assert judge_result(short, "held", None, "") == (False, "wrong")
    rows = [
        ["x", 10.0, 504, None, "1.0.1", 3000],
        ["x", 11.0, 503, None, "<NOSRV>", 1],
        ["x", 12.0, 200, "1.0.0", "1.0.0", 1],
    ]
    assert client_view(rows, 0, 20) == {"n": 1, "504": 1, "no server": 1}


def test_time_varying_faults() -> None:
    """A second phase replaces the base rates (partial recovery, a window of tail spikes); errors
    that grow with time; 503s only while the process is busy (a version that breaks under load)."""
    settings = ScenarioSettings.from_env(
        {"SCN_VERSION": "1", "SCN_LATENCY_MS": "0", "SCN_ERROR_RATE": "0.5", "SCN_LATER_AFTER_S": "0.2",
         "SCN_LATER_UNTIL_S": "60", "SCN_LATER_ERROR_RATE": "0.1"}
    )  # fmt: skip
    c = Client(ScenarioApp(settings))
    assert codes(c, 10).count(500) == 5
    time.sleep(0.25)
    assert codes(c, 20).count(500) == 2  # the later phase: 10%
    growing = app(SCN_ERROR_GROWTH_PER_S="10")  # 100% after 0.1 s
    assert codes(growing, 1) == [200]
    time.sleep(0.15)
    assert codes(growing, 10) == [500] * 10
    busy = app(SCN_BUSY_RPS="5", SCN_BUSY_ERROR_RATE="1")
    assert codes(busy, 5) == [200] * 5  # 5 in a second: not over the limit
    assert codes(busy, 3) == [503] * 3
    time.sleep(1.05)
    assert codes(busy, 1) == [200]
    with pytest.raises(RuntimeError, match="out of range"):
        ScenarioSettings.from_env({"SCN_VERSION": "1", "SCN_LATER_AFTER_S": "1", "SCN_LATER_ERROR_RATE": "2"})


def test_drift_adds_latency_with_time() -> None:
    c = app(SCN_DRIFT_MS_PER_S="200")  # 20 ms more after 0.1 s
    c.get("/")
    time.sleep(0.1)
    started = time.perf_counter()
    c.get("/")
    assert time.perf_counter() - started >= 0.02
