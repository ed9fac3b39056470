"""The Datadog metrics provider against a local server that answers Datadog's metrics query API
(tests/ci/datadog_fake.py): the built-in checks, step requests and response counts on programmed
traffic, the keys in the headers and never in a reason, 429 with X-RateLimit-Reset, 5xx retries,
4xx not retried, and a whole release judged on Datadog."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.cli.demo.stack import free_port
from app.config_file.loader import parse_config
from app.context import Context
from app.core.config.policy import CheckConfig, PolicyConfig, StepConfig
from app.core.models import Release
from app.release.intake import start_release
from integrations.datadog.config import DatadogConfig
from integrations.datadog.provider import DatadogProvider, fraction_under
from integrations.prometheus.config import MetricConfig
from integrations.registry.metrics import provider_for
from tests.support.datadog_fake import Answer, FakeDatadog, rate_limit_headers
from tests.support.fakes import FakeRouter
from workers.tick import tick

pytestmark = pytest.mark.integration

API_KEY = "dd-api-key-0123456789abcdef0123456789"
APP_KEY = "dd-app-key-fedcba9876543210fedcba9876543210abcd"
HITS, DURATIONS = "trace.http.request.hits", "trace.http.request"
AT = 1_700_000_000.0
TAGS = {"env": "prod", "kube_namespace": "prod"}

# 1000 requests' durations: p50 = 0.05, p75 = p90 = 0.4, p95 = 0.75, p99 = p99.9 = 3.0 seconds.
DURATIONS_CANDIDATE = [0.05] * 600 + [0.4] * 300 + [0.75] * 60 + [3.0] * 40
DURATIONS_STABLE = [0.05] * 980 + [0.75] * 20


@pytest.fixture
def dd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatadog]:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    server = FakeDatadog(API_KEY, APP_KEY).start()
    # shop 1.0.371 (candidate): 20 requests/s, 4 of them 5xx; 1.0.370 (stable): 10/s, 0.1 of them 5xx.
    for cls, per_second in (("2xx", 14.0), ("4xx", 2.0), ("5xx", 4.0)):
        server.add_hits(HITS, per_second, service="shop", version="1.0.371", **TAGS, **{"http.status_class": cls})
    for cls, per_second in (("2xx", 9.9), ("5xx", 0.1)):
        server.add_hits(HITS, per_second, service="shop", version="1.0.370", **TAGS, **{"http.status_class": cls})
    server.add_hits(HITS, 5.0, service="shop", version="1.0.369", **TAGS, **{"http.status_class": "2xx"})
    server.add_hits(HITS, 99.0, service="shop", version="1.0.371", env="staging", kube_namespace="staging")
    server.add_durations(DURATIONS, DURATIONS_CANDIDATE, service="shop", version="1.0.371", **TAGS)
    server.add_durations(DURATIONS, DURATIONS_STABLE, service="shop", version="1.0.370", **TAGS)
    try:
        yield server
    finally:
        server.stop()


def config(url: str, **overrides: object) -> DatadogConfig:
    settings: dict[str, object] = {
        "type": "datadog", "base_url": url, "namespace_tag": "kube_namespace", "tags": ["env:prod"], "timeout": "5s",
    }  # fmt: skip
    return DatadogConfig.model_validate({**settings, **overrides})


@pytest.fixture
def provider(dd: FakeDatadog) -> Iterator[DatadogProvider]:
    p = DatadogProvider(config(dd.url))
    yield p
    p.close()


def release(target: str = "1.0.371", source: str = "1.0.370", namespace: str = "prod") -> Release:
    return Release(
        id="r1", application="shop", namespace=namespace, service="shop", source_version=source,
        target_version=target, policy="canary", created_at=AT - 600, updated_at=AT - 600,
    )  # fmt: skip


def policy(*checks: CheckConfig, window: str = "60s") -> PolicyConfig:
    return PolicyConfig.model_validate(
        {"name": "canary", "interval": "10s", "window": window, "steps": [StepConfig(weight=100)], "checks": checks}
    )


# --- the built-in checks --------------------------------------------------------------------------


def test_error_and_request_rate_with_stable_from_one_query_per_version(
    provider: DatadogProvider, dd: FakeDatadog
) -> None:
    checks = [
        CheckConfig(name="errors", type="error_rate", max=0.05, max_over_stable=0.02),
        CheckConfig(name="traffic", type="request_rate", min=10, max_over_stable=0),
    ]
    errors, traffic = provider.observe_checks(policy(*checks), {}, release(), AT)
    assert errors.error is None and traffic.error is None
    assert errors.value == pytest.approx(4 / 20) and errors.stable_value == pytest.approx(0.1 / 10)
    assert traffic.value == pytest.approx(20 * 60) and traffic.stable_value == pytest.approx(10 * 60)
    assert errors.query == (
        "sum:trace.http.request.hits{service:shop,version:1.0.371,kube_namespace:prod,env:prod}"
        " by {http.status_class}.as_count()"
    )
    assert "version:1.0.370" in (errors.stable_query or "")
    assert len(dd.seen) == 2  # one counts query per version, shared by both checks
    for seen in dd.seen:
        assert seen.headers["DD-API-KEY"] == API_KEY and seen.headers["DD-APPLICATION-KEY"] == APP_KEY
        assert (seen.params["from"], seen.params["to"]) == (str(int(AT - 60)), str(int(AT)))


def test_error_rate_is_zero_without_5xx_and_no_data_without_traffic(provider: DatadogProvider) -> None:
    check = CheckConfig(name="errors", type="error_rate", max=0.05)
    [obs] = provider.observe_checks(policy(check), {}, release(target="1.0.369"), AT)
    assert (obs.value, obs.error) == (0.0, None)
    for rel in (release(target="9.9.9"), release(namespace="staging-2")):
        [obs] = provider.observe_checks(policy(check), {}, rel, AT)
        assert (obs.value, obs.error) == (None, "no data: the query returned no series")


@pytest.mark.parametrize(
    ("under", "fraction"), [("500ms", 0.90), ("1s", 0.95), ("400ms", 0.90), ("10ms", 0.0), ("5s", 0.999)]
)
def test_latency_fraction_is_estimated_from_percentiles(
    provider: DatadogProvider, dd: FakeDatadog, under: str, fraction: float
) -> None:
    check = CheckConfig(name="fast", type="latency", under=under, min=0.9, max_over_stable=0.05)
    [obs] = provider.observe_checks(policy(check), {}, release(), AT)
    assert obs.error is None, obs.error
    assert obs.value == pytest.approx(fraction)
    assert obs.query and obs.query.startswith("p50:trace.http.request{service:shop,version:1.0.371,")
    assert obs.query.count(":trace.http.request{") == 6 and ",p99.9:" in obs.query
    assert len(dd.seen) == 2  # all percentiles in one query, per version
    assert obs.stable_value is not None and obs.stable_value >= fraction


def test_latency_in_milliseconds_and_without_data(dd: FakeDatadog) -> None:
    dd.add_durations("web.latency.ms", [40.0] * 90 + [900.0] * 10, service="shop", version="1.0.371", **TAGS)
    p = DatadogProvider(config(dd.url, latency_metric="web.latency.ms", latency_unit="ms"))
    try:
        [obs] = p.observe_checks(policy(CheckConfig(name="fast", type="latency", under="500ms", min=0.9)), {},
                                 release(), AT)  # fmt: skip
        assert obs.value == pytest.approx(0.90)
        [obs] = p.observe_checks(policy(CheckConfig(name="fast", type="latency", under="500ms", min=0.9)), {},
                                 release(target="1.0.369"), AT)  # fmt: skip
        assert obs.value is None and obs.error and obs.error.startswith("no data") and "web.latency.ms" in obs.error
    finally:
        p.close()


def test_fraction_under_is_a_lower_bound() -> None:
    pcts = [(50.0, 0.1), (90.0, 0.4), (99.0, 2.0)]
    assert fraction_under(pcts, 0.39) == 0.5
    assert fraction_under(pcts, 0.4) == 0.9
    assert fraction_under(pcts, 0.05) == 0.0
    assert fraction_under(pcts, 3.0) == 0.99


def test_query_check_renders_checked_values(provider: DatadogProvider, dd: FakeDatadog) -> None:
    metrics = {
        "hits": MetricConfig(query="sum:trace.http.request.hits{service:{service},version:{version}}.as_count()"),
        "broken": MetricConfig(query="sum:trace.http.request.hits{service:{service}"),
        "grouped": MetricConfig(
            query="sum:trace.http.request.hits{service:{service}} by {http.status_class}.as_count()"
        ),
    }
    checks = [
        CheckConfig(name="hits", type="query", metric="hits", min=1),
        CheckConfig(name="broken", type="query", metric="broken", min=1),
        CheckConfig(name="grouped", type="query", metric="grouped", min=1),
    ]
    hits, broken, grouped = provider.observe_checks(policy(*checks), metrics, release(), AT)
    assert hits.value == pytest.approx((20 + 99) * 10) and hits.error is None  # mean requests per 10 s point
    assert broken.value is None and broken.error and broken.error.startswith("Datadog error: HTTP 400: Error parsing")
    assert grouped.value is None and grouped.error and "aggregate it" in grouped.error


# --- step requests, response counts ---------------------------------------------------------------


def test_step_requests(provider: DatadogProvider) -> None:
    assert provider.step_requests(release(), AT, AT - 300) == pytest.approx(20 * 300)
    assert provider.step_requests(release(), AT, AT) == 0.0
    assert provider.step_requests(release(target="9.9.9"), AT, AT - 300) is None


def test_response_counts_by_class_without_latency_buckets(provider: DatadogProvider) -> None:
    counts = provider.response_counts("shop", "1.0.371", "prod", AT - 300, AT)
    assert counts.error is None
    assert counts.requests == pytest.approx(6000)
    assert counts.by_class == pytest.approx({"2xx": 4200, "3xx": 0, "4xx": 600, "5xx": 1200})
    assert counts.buckets == []
    assert provider.response_counts("shop", "9.9.9", "prod", AT - 60, AT).error == (
        "no data: the query returned no series"
    )
    assert "empty interval" in (provider.response_counts("shop", "1.0.371", "prod", AT, AT).error or "")
    bad = provider.response_counts("shop", "x}} by {env", "prod", AT - 60, AT)
    assert bad.error and bad.error.startswith("cannot build the query") and "x}} by {env" in bad.error


def test_values_are_lowered_and_refused_outside_the_safe_charset(provider: DatadogProvider, dd: FakeDatadog) -> None:
    dd.add_hits(HITS, 1.0, service="shop", version="2.0.0-rc1", **TAGS, **{"http.status_class": "2xx"})
    assert provider.step_requests(release(target="2.0.0-RC1"), AT, AT - 10) == pytest.approx(10)
    for version in ("1.0,env:*", "1.0 OR version:x", "a}b", "*", ""):
        [obs] = provider.observe_checks(
            policy(CheckConfig(name="e", type="error_rate", max=1)), {}, release(target=version), AT
        )
        assert obs.error and obs.error.startswith("cannot build the query"), version
    assert len(dd.seen) == 1


# --- rate limits, retries, errors, keys ----------------------------------------------------------


def test_429_waits_for_x_ratelimit_reset_then_succeeds(provider: DatadogProvider, dd: FakeDatadog) -> None:
    dd.fail_next(Answer(429, {"errors": ["Too many requests"]}, rate_limit_headers(reset=1)))
    began = time.monotonic()
    assert provider.step_requests(release(), AT, AT - 60) == pytest.approx(1200)
    assert time.monotonic() - began >= 0.9
    assert len(dd.seen) == 2 and dd.seen[1].at - dd.seen[0].at >= 0.9


def test_429_beyond_the_cap_is_a_rate_limited_observation(dd: FakeDatadog) -> None:
    p = DatadogProvider(config(dd.url, max_rate_limit_wait="2s"))
    dd.fail_next(Answer(429, {"errors": ["Too many requests"]}, rate_limit_headers(reset=40, name="metrics_query")))
    began = time.monotonic()
    try:
        [obs] = p.observe_checks(policy(CheckConfig(name="e", type="error_rate", max=1)), {}, release(), AT)
    finally:
        p.close()
    assert time.monotonic() - began < 1.0
    assert obs.value is None
    assert obs.error == "Datadog rate limited (metrics_query): the limit resets in 40s"
    assert len(dd.seen) == 1


def test_500_once_is_retried_and_500_always_gives_up(dd: FakeDatadog) -> None:
    p = DatadogProvider(config(dd.url, retries=2))
    try:
        dd.fail_next(Answer(500, {"errors": ["Internal Server Error"]}))
        assert p.step_requests(release(), AT, AT - 60) == pytest.approx(1200)
        assert len(dd.seen) == 2
        dd.seen.clear()
        dd.fail_next(*[Answer(503, {"errors": ["Service Unavailable"]})] * 3)
        counts = p.response_counts("shop", "1.0.371", "prod", AT - 60, AT)
        assert counts.error == "Datadog error: HTTP 503: Service Unavailable" and len(dd.seen) == 3
    finally:
        p.close()


def test_4xx_is_not_retried_and_keys_never_appear(dd: FakeDatadog) -> None:
    p = DatadogProvider(config(dd.url))
    try:
        dd.fail_next(Answer(403, {"errors": [f"Forbidden: key {API_KEY} / {APP_KEY} lacks timeseries_query"]}))
        [obs] = p.observe_checks(policy(CheckConfig(name="e", type="error_rate", max=1)), {}, release(), AT)
    finally:
        p.close()
    assert len(dd.seen) == 1
    shown = obs.model_dump_json()
    assert API_KEY not in shown and APP_KEY not in shown
    assert obs.error == "Datadog error: HTTP 403: Forbidden: key [redacted] / [redacted] lacks timeseries_query"


def test_wrong_key_is_forbidden_and_missing_keys_are_named(dd: FakeDatadog, monkeypatch: pytest.MonkeyPatch) -> None:
    p = DatadogProvider(config(dd.url))
    try:
        monkeypatch.setenv("DD_APP_KEY", "not-the-key")
        assert p.response_counts("shop", "1.0.371", "prod", AT - 60, AT).error == "Datadog error: HTTP 403: Forbidden"
        monkeypatch.delenv("DD_API_KEY")
        counts = p.response_counts("shop", "1.0.371", "prod", AT - 60, AT)
        assert counts.error == "Datadog: environment variable DD_API_KEY (the Datadog API key) is not set"
    finally:
        p.close()
    assert len(dd.seen) == 1


def test_slow_and_unreachable_datadog_are_reasons_within_the_budget(dd: FakeDatadog) -> None:
    p = DatadogProvider(config(dd.url, timeout="1s"))
    dd.fail_next(Answer(200, {"status": "ok", "series": []}, delay=3.0))
    began = time.monotonic()
    counts = p.response_counts("shop", "1.0.371", "prod", AT - 60, AT)
    assert time.monotonic() - began < 2.5 and counts.error == "Datadog error: no answer within 1s"
    p.close()
    p = DatadogProvider(config(f"http://127.0.0.1:{free_port()}", timeout="1s"))
    began = time.monotonic()
    counts = p.response_counts("shop", "1.0.371", "prod", AT - 60, AT)
    p.close()
    assert time.monotonic() - began < 2.5
    assert counts.error and counts.error.startswith("Datadog error: cannot reach http://127.0.0.1:")
    assert API_KEY not in counts.error


def test_status_error_in_a_200_is_a_reason(provider: DatadogProvider, dd: FakeDatadog) -> None:
    dd.fail_next(Answer(200, {"status": "error", "error": "Rollup interval too small", "series": []}))
    assert provider.step_requests(release(), AT, AT - 60) is None
    dd.fail_next(Answer(200, {"status": "error", "error": "Rollup interval too small", "series": []}))
    counts = provider.response_counts("shop", "1.0.371", "prod", AT - 60, AT)
    assert counts.error == "Datadog error: Rollup interval too small"


# --- configured and judged through the registry -----------------------------------------------------

DD_CONFIG = """
metrics_provider:
  type: datadog
  site: datadoghq.eu
  base_url: {url}
  namespace_tag: kube_namespace
  tags: [env:prod]
  timeout: 3s
applications:
  - name: shop
    namespace: prod
    router: {{type: haproxy, socket: "127.0.0.1:1"}}
    services:
      - {{name: shop, policy: quick, stable_version: 1.0.370}}
policies:
  - name: quick
    interval: 500ms
    window: 60s
    judge: {{warmup: 0s}}
    steps: [{{weight: 10}}, {{weight: 100}}]
    checks:
      - {{name: errors, type: error_rate, max: 0.05}}
      - {{name: traffic, type: request_rate, min: 60}}
      - {{name: fast, type: latency, under: 1s, min: 0.9}}
"""


def test_the_configuration_selects_datadog() -> None:
    cfg = parse_config(DD_CONFIG.format(url="http://127.0.0.1:1"))
    assert cfg.metrics_source.type == "datadog" and cfg.metrics_source.site == "datadoghq.eu"
    p = provider_for(cfg.metrics_source, url="http://prometheus.invalid:9090")  # PROMETHEUS_URL is not Datadog's
    assert isinstance(p, DatadogProvider) and p.querier.url == "http://127.0.0.1:1/api/v1/query"
    p.close()
    assert DatadogConfig(type="datadog", site="us5.datadoghq.com").api_url == "https://api.us5.datadoghq.com"
    from app.config_file.loader import ConfigError

    for bad in ("tags: ['env:prod,service:x']", "site: evil.example.com", "requests_metric: 'a{b}'"):
        with pytest.raises(ConfigError):
            parse_config(DD_CONFIG.format(url="http://127.0.0.1:1").replace("  timeout: 3s", "  " + bad))


@pytest.mark.parametrize(("candidate", "state"), [("1.0.369", "succeeded"), ("1.0.371", "failed")])
def test_a_release_is_judged_on_datadog(redis_url: str, dd: FakeDatadog, candidate: str, state: str) -> None:
    dd.add_hits(HITS, 5.0, service="shop", version="1.0.369", **TAGS, **{"http.status_class": "2xx"})  # 10/s in all
    dd.add_durations(DURATIONS, [0.1] * 100, service="shop", version="1.0.369", **TAGS)
    # Enough traffic for the comparison with stable to conclude within the test's seconds.
    for version in ("1.0.369", "1.0.370"):
        dd.add_hits(HITS, 490.0, service="shop", version=version, **TAGS, **{"http.status_class": "2xx"})
    ctx = Context(config=parse_config(DD_CONFIG.format(url=dd.url)), redis_url=redis_url)
    ctx._routers["shop"] = FakeRouter()
    try:
        rid = start_release(ctx, "shop", candidate).release.id
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            tick(ctx, rid, ctx.store.get(rid).seq)  # type: ignore[union-attr]
            rel = ctx.store.get(rid)
            assert rel is not None
            if rel.terminal:
                break
        assert rel.state == state, rel.reason
        if state == "failed":
            assert "errors" in (rel.reason or "")
        assert all(s.headers["DD-API-KEY"] == API_KEY for s in dd.seen)
    finally:
        ctx.metrics_provider.close()
        ctx.store.r.close()


def test_the_configuration_doc_snippet_is_a_valid_configuration() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    [snippet] = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "type: datadog" in b]
    apps = DD_CONFIG[DD_CONFIG.index("applications:") :].replace("{{", "{").replace("}}", "}")
    cfg = parse_config(snippet + apps)
    assert cfg.metrics_source.type == "datadog" and cfg.metrics_source.tags == ["env:prod"]
