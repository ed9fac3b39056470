"""The built-in checks against a REAL Prometheus holding known, imported data.

How the data gets in (verified with Debian's Prometheus 2.42 / promtool):
- `promtool tsdb create-blocks-from openmetrics FILE DIR` turns timestamped OpenMetrics text
  (counters need `# TYPE x counter` + `x_total`, the file must end with `# EOF`, timestamps
  are in seconds) into blocks aligned to 2h boundaries; a 20-minute range can become two.
- Prometheus started on DIR with no scrape targets serves those blocks at once; no flag is
  needed. Recent data (the last minutes) works too: the head is empty, so nothing overlaps,
  and since 2.39 overlapping blocks are allowed anyway (`--storage.tsdb.allow-overlapping-blocks`
  is a deprecated no-op).
- Time retention is measured from the newest block's max time, not from the wall clock, so
  the fixed 2023 range used here is not deleted even with the default 15d retention; we still
  pass `--storage.tsdb.retention.time=100y` so that never depends on that detail.
- A fixed range and a fixed evaluation time keep every number reproducible.
- `le` is stored verbatim: prometheus_client style `le="1.0"` and client_golang style `le="1"`
  are different label values (see `test_le_is_stored_verbatim`), hence `queries.le_matcher`.

Counters grow linearly, so rate() (which extrapolates to the window's edges) is exact here.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from app.cli.demo.stack import free_port
from app.core.config.policy import CheckConfig, PolicyConfig, StepConfig
from app.core.models import Release
from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.config import MetricConfig, PrometheusConfig
from integrations.prometheus.observe import observe_checks, observe_step_requests
from tests.support.prom_data import (
    Traffic,
    expected_error_rate,
    expected_fraction_under,
    expected_requests_between,
    expected_requests_per_minute,
    openmetrics,
    serve_history,
)

pytestmark = pytest.mark.integration

END = 1_700_000_000  # 2023-11-14T22:13:20Z
START = END - 20 * 60
STEP = 5
AT = END - 120  # evaluation time, well inside the data

STABLE = Traffic("shop", "1.0.370", codes={"200": 99, "500": 1}, latencies=[(0.05, 98), (0.75, 2)])
CANDIDATE = Traffic(
    "shop",
    "1.0.371",
    codes={"200": 16, "404": 4, "500": 3, "503": 2},
    latencies=[(0.05, 15), (0.75, 6), (3.0, 4)],
)
NO_ERRORS = Traffic("shop", "1.0.369", codes={"200": 10}, latencies=[(0.02, 10)])
GO_STYLE = Traffic(
    "goshop", "2.0.0", codes={"200": 8, "500": 2}, latencies=[(0.3, 5), (0.9, 3), (2.0, 2)], le_style="go"
)
ALL_TRAFFIC = [STABLE, CANDIDATE, NO_ERRORS, GO_STYLE]

PROM = PrometheusConfig(namespace_label="namespace")
METRICS = {
    "not-found": MetricConfig(
        query='sum(rate(http_requests_total{app="{service}",version="{version}",code="404"}[{window}]))'
        ' / sum(rate(http_requests_total{app="{service}",version="{version}"}[{window}]))'
    ),
    "broken": MetricConfig(query='sum(rate(http_requests_total{app="{service}"}[{window}])'),
    "per-code": MetricConfig(query='sum by (code) (rate(http_requests_total{app="{service}"}[{window}]))'),
}


def release(
    target: str = CANDIDATE.version,
    source: str = STABLE.version,
    service: str = "shop",
    namespace: str = "prod",
) -> Release:
    return Release(
        id="r1",
        application="shop",
        namespace=namespace,
        service=service,
        source_version=source,
        target_version=target,
        policy="canary",
        created_at=START,
        updated_at=START,
    )


def policy(*checks: CheckConfig, window: str = "30s") -> PolicyConfig:
    return PolicyConfig.model_validate(
        {
            "name": "canary",
            "interval": "10s",
            "window": window,
            "steps": [StepConfig(weight=100)],
            "checks": list(checks),
        }
    )


@pytest.fixture(scope="module")
def prom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = serve_history(tmp_path_factory.mktemp("prometheus"), openmetrics(ALL_TRAFFIC, START, END, STEP))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture()
def querier(prom_url: str) -> Iterator[PrometheusQuerier]:
    q = PrometheusQuerier(prom_url, timeout=5.0)
    yield q
    q.close()


# --- what is stored --------------------------------------------------------------------------------


def test_le_is_stored_verbatim(prom_url: str) -> None:
    values = requests.get(f"{prom_url}/api/v1/label/le/values", timeout=5).json()["data"]
    assert {"1.0", "5.0", "1", "5", "0.5", "+Inf"} <= set(values)


# --- the built-in checks ----------------------------------------------------------------------------


def test_error_rate_with_stable_comparison(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="errors", type="error_rate", max=0.05, max_over_stable=0.02)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.error is None, obs.error
    assert obs.value == pytest.approx(expected_error_rate(CANDIDATE), abs=0.01)
    assert obs.value == pytest.approx(0.20, abs=0.01)
    assert obs.stable_value == pytest.approx(expected_error_rate(STABLE), abs=0.001)
    assert obs.stable_value == pytest.approx(0.01, abs=0.001)
    assert 'version="1.0.371"' in (obs.query or "") and 'version="1.0.370"' in (obs.stable_query or "")
    assert 'namespace="prod"' in (obs.query or "")


def test_error_rate_is_zero_without_any_5xx_series(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="errors", type="error_rate", max=0.05)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(target=NO_ERRORS.version), querier, AT)
    assert (obs.value, obs.error) == (0.0, None)


@pytest.mark.parametrize("under", [0.5, 1.0, 0.1, 5.0])
def test_latency_fraction(querier: PrometheusQuerier, under: float) -> None:
    check = CheckConfig(name="fast", type="latency", under=under, min=0.9)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.error is None, obs.error
    assert obs.value == pytest.approx(expected_fraction_under(CANDIDATE, under), abs=0.005)
    if under == 0.5:
        assert obs.value == pytest.approx(0.6, abs=0.005)


def test_latency_integer_bound_matches_go_style_le(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="fast", type="latency", under="1s", min=0.9)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(target="2.0.0", service="goshop"), querier, AT)
    assert obs.value == pytest.approx(expected_fraction_under(GO_STYLE, 1.0), abs=0.005)


def test_latency_bound_that_is_not_a_bucket_says_so(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="fast", type="latency", under="300ms", min=0.9)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.value is None
    assert obs.error and obs.error.startswith("no data") and "bucket" in obs.error


def test_request_rate_per_minute(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="traffic", type="request_rate", min=10, max_over_stable=0)
    [obs] = observe_checks(policy(check, window="1m"), PROM, METRICS, release(), querier, AT)
    assert obs.value == pytest.approx(expected_requests_per_minute(CANDIDATE, STEP), rel=0.02)
    assert obs.value == pytest.approx(300, rel=0.02)
    assert obs.stable_value == pytest.approx(expected_requests_per_minute(STABLE, STEP), rel=0.02)


def test_query_check_with_stable(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="nf", type="query", metric="not-found", max=0.5, max_over_stable=0.1)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.value == pytest.approx(4 / 25, abs=0.001)
    assert obs.stable_value is None
    assert obs.error and "stable version 1.0.370" in obs.error and "no data" in obs.error


def test_step_requests(querier: PrometheusQuerier) -> None:
    since = AT - 300
    value = observe_step_requests(PROM, release(), querier, AT, since)
    assert value == pytest.approx(expected_requests_between(CANDIDATE, 300, STEP), rel=0.02)
    assert observe_step_requests(PROM, release(), querier, AT, AT) == 0.0
    assert observe_step_requests(PROM, release(target="9.9.9"), querier, AT, since) is None


# --- what goes wrong, as reasons ------------------------------------------------------------------


def test_unknown_version_and_namespace_are_no_data(querier: PrometheusQuerier) -> None:
    checks = [
        CheckConfig(name="errors", type="error_rate", max=0.05),
        CheckConfig(name="traffic", type="request_rate", min=1),
    ]
    for rel in (release(target="9.9.9"), release(namespace="staging")):
        for obs in observe_checks(policy(*checks), PROM, METRICS, rel, querier, AT):
            assert obs.value is None
            assert obs.error == "no data: the query returned no series"


def test_data_outside_the_evaluation_time_is_no_data(querier: PrometheusQuerier) -> None:
    value, error = querier.query_value('sum(rate(http_requests_total{app="shop"}[30s]))', END + 3600)
    assert (value, error) == (None, "no data: the query returned no series")


def test_syntax_error_is_a_reason(querier: PrometheusQuerier) -> None:
    value, error = querier.query_value("sum(rate(http_requests_total[30s])", AT)
    assert value is None
    assert error and error.startswith("Prometheus error: HTTP 400: bad_data:") and "parse error" in error
    check = CheckConfig(name="b", type="query", metric="broken", max=1)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.value is None and obs.error and "parse error" in obs.error


def test_several_series_must_be_aggregated(querier: PrometheusQuerier) -> None:
    check = CheckConfig(name="c", type="query", metric="per-code", max=1)
    [obs] = observe_checks(policy(check), PROM, METRICS, release(), querier, AT)
    assert obs.value is None
    assert obs.error and "series; aggregate it with sum()" in obs.error


@pytest.mark.parametrize(("query", "shown"), [("0/0", "NaN"), ("vector(0) / 0", "NaN"), ("vector(1) / 0", "+Inf")])
def test_nan_and_inf_are_reasons(querier: PrometheusQuerier, query: str, shown: str) -> None:
    value, error = querier.query_value(query, AT)
    assert value is None
    assert error and error.startswith(f"the query returned {shown} (NaN/Inf")


def test_scalar_result(querier: PrometheusQuerier) -> None:
    assert querier.query_value("scalar(vector(0.25)) * 2", AT) == (0.5, None)


def test_unreachable_prometheus_fails_fast_without_secrets() -> None:
    url = f"http://user:hunter2@127.0.0.1:{free_port()}"
    q = PrometheusQuerier(url, timeout=2.0, headers={"Authorization": "Bearer s3cret-token"})
    began = time.monotonic()
    value, error = q.query_value("up", AT)
    assert time.monotonic() - began < 2.5
    assert value is None
    assert error and error.startswith("Prometheus error: cannot reach http://127.0.0.1:")
    assert "s3cret" not in error and "hunter2" not in error


# --- retries and time budget, against a tiny local HTTP server ------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, delay) per request, then 200 with the value 7."""

    script: list[tuple[int, float]] = []
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.hits.append(self.headers.get("Authorization", ""))
        status, delay = self.script.pop(0) if self.script else (200, 0.0)
        time.sleep(delay)
        if status == 200:
            body = {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [AT, "7"]}]},
            }
        else:
            body = {"status": "error", "errorType": "unavailable", "error": "try later"}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def flaky() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"script": [], "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_retries_5xx_then_succeeds(flaky: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky
    handler.script[:] = [(503, 0.0), (500, 0.0)]
    q = PrometheusQuerier(url, timeout=3.0, headers={"Authorization": "Bearer t0ken"}, retries=2)
    assert q.query_value("up", AT) == (7.0, None)
    assert handler.hits == ["Bearer t0ken"] * 3


def test_gives_up_after_retries_and_does_not_retry_4xx(flaky: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky
    handler.script[:] = [(503, 0.0)] * 5
    value, error = PrometheusQuerier(url, timeout=3.0, retries=1).query_value("up", AT)
    assert value is None and error == "Prometheus error: HTTP 503: unavailable: try later"
    assert len(handler.hits) == 2
    handler.hits.clear()
    handler.script[:] = [(422, 0.0)]
    value, error = PrometheusQuerier(url, timeout=3.0).query_value("up", AT)
    assert error == "Prometheus error: HTTP 422: unavailable: try later" and len(handler.hits) == 1


def test_slow_server_is_cut_off_at_the_timeout(flaky: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky
    handler.script[:] = [(200, 3.0)]
    began = time.monotonic()
    value, error = PrometheusQuerier(url, timeout=0.5).query_value("up", AT)
    assert time.monotonic() - began < 2.5  # well before the server's 3 s answer (slack for a busy machine)
    assert value is None and error and "did not answer within 0.5s" in error


def test_total_time_is_bounded_across_retries(flaky: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky
    handler.script[:] = [(503, 0.4)] * 10
    began = time.monotonic()
    value, error = PrometheusQuerier(url, timeout=1.0, retries=10).query_value("up", AT)
    assert time.monotonic() - began < 3.0  # ten retries of 0.4 s each would take over 4 s
    assert value is None and error and "503" in error


# --- one query per check for a batch of releases -----------------------------------------------------

BATCH_CONFIG = """
prometheus: {{url: "{url}", timeout: 5s, namespace_label: namespace}}
applications:
  - name: shop
    namespace: prod
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
      - {{name: shop, policy: canary}}
      - {{name: goshop, policy: canary}}
policies:
  - name: canary
    window: 30s
    steps: [{{weight: 100}}]
    checks:
      - {{name: fast, type: latency, under: 1s, min: 0.5}}
      - {{name: traffic, type: request_rate, min: 1}}
      - {{name: errors, type: error_rate, max_over_stable: 0.5}}
      - {{name: not-found, type: query, metric: not-found, max: 1}}
metrics:
  not-found:
    query: 'sum(rate(http_requests_total{{app="{{service}}",version="{{version}}",code="404"}}[{{window}}]))'
"""


def test_one_grouped_query_per_check_gives_each_release_what_its_own_queries_give(prom_url: str) -> None:
    from app.config_file.loader import parse_config
    from app.context import Context

    ctx = Context(config=parse_config(BATCH_CONFIG.format(url=prom_url)), prometheus_url=prom_url)
    releases = [
        release().model_copy(update={"state": "running", "step": 0}),  # shop 1.0.370 -> 1.0.371
        release(service="goshop", target="2.0.0", source="1.9.9").model_copy(  # no data for 1.9.9
            update={"id": "r2", "state": "running", "step": 0}
        ),
    ]
    _, _, canary = ctx.locate(releases[0])
    one_by_one = [
        observe_checks(canary, ctx.config.prometheus, ctx.config.metrics, r, ctx.prometheus, AT) for r in releases
    ]

    primed = ctx.prime_metrics(releases, AT)
    # 3 built-in checks; the error check also asks for the stable version: 4 queries per release.
    assert primed == 8
    sent: list[str] = []  # what still goes to Prometheus once primed
    real_query = ctx.prometheus._query
    ctx.prometheus._query = lambda q, at: (sent.append(q), real_query(q, at))[1]  # type: ignore[method-assign]
    batched = [
        observe_checks(canary, ctx.config.prometheus, ctx.config.metrics, r, ctx.prometheus, AT) for r in releases
    ]
    assert batched == one_by_one
    assert len(sent) == 2 and all('code="404"' in q for q in sent)  # only the user's own query
    by_name = {o.name: o for o in batched[0]}
    assert by_name["errors"].value == pytest.approx(expected_error_rate(CANDIDATE))
    assert by_name["errors"].stable_value == pytest.approx(expected_error_rate(STABLE))
    goshop = {o.name: o for o in batched[1]}
    assert goshop["errors"].stable_value is None and "no data" in (goshop["errors"].error or "")
