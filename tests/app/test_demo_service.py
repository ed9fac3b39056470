"""The demo service fails exactly as often as asked, and labels its metrics with its version."""

from __future__ import annotations

import threading

import pytest

from app.cli.demo.service import create_app


def _client(**env: str):
    return create_app({"DEMO_VERSION": "1.0.371", "DEMO_LATENCY_MS": "0", **env}).test_client()


def test_error_rate_is_exact():
    client = _client(DEMO_ERROR_RATE="0.3")
    codes = [client.get("/").status_code for _ in range(100)]
    assert codes.count(500) == 30
    assert codes.count(200) == 70
    # 3 of every 10, not 30 in a burst: each block of ten requests has exactly three failures.
    assert all(codes[i : i + 10].count(500) == 3 for i in range(0, 100, 10))


def test_error_rate_exact_under_threads():
    client = _client(DEMO_ERROR_RATE="0.25")
    codes: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(50):
            code = client.get("/").status_code
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(codes) == 200 and codes.count(500) == 50


def test_answers_service_and_version():
    client = _client(DEMO_SERVICE="shop")
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.get_json() == {"service": "shop", "version": "1.0.371"}


def test_metrics_are_labelled_with_version_and_skip_health_and_metrics():
    client = _client(DEMO_ERROR_RATE="0.5")
    for _ in range(4):
        client.get("/")
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    client.get("/metrics")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{app="blueskygreenbuilds",code="200",version="1.0.371"} 2.0' in text
    assert 'http_requests_total{app="blueskygreenbuilds",code="500",version="1.0.371"} 2.0' in text
    assert 'http_request_duration_seconds_count{app="blueskygreenbuilds",version="1.0.371"} 4.0' in text
    bucket = 'http_request_duration_seconds_bucket{app="blueskygreenbuilds",le="0.005",version="1.0.371"}'
    assert bucket in text
    assert "/healthz" not in text and 'code="404"' not in text


def test_healthz_never_fails():
    client = _client(DEMO_ERROR_RATE="1")
    assert all(client.get("/healthz").status_code == 200 for _ in range(10))
    assert client.get("/").status_code == 500


def test_latency_is_added():
    client = create_app({"DEMO_VERSION": "1.0.371", "DEMO_LATENCY_MS": "30"}).test_client()
    client.get("/")
    text = client.get("/metrics").get_data(as_text=True)
    bucket = 'http_request_duration_seconds_bucket{app="blueskygreenbuilds",le="0.025",version="1.0.371"}'
    assert f"{bucket} 0.0" in text


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "DEMO_VERSION"),
        ({"DEMO_VERSION": "1", "DEMO_ERROR_RATE": "1.5"}, "between 0 and 1"),
        ({"DEMO_VERSION": "1", "DEMO_ERROR_RATE": "lots"}, "not a number"),
        ({"DEMO_VERSION": "1", "DEMO_LATENCY_MS": "-3"}, "negative"),
    ],
)
def test_bad_settings_say_what_to_fix(env, message):
    with pytest.raises(RuntimeError, match=message):
        create_app(env)
