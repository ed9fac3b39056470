"""`sluice doctor` against real services: Redis, Prometheus serving promtool-imported history, HAProxy,
the fake Kubernetes API server (SelfSubjectAccessReview) and a fake CircleCI. One test per kind of
failure, each checking the finding names the problem and gives a fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.cli.demo.stack import HAProxyBackend, free_port, start_haproxy, start_redis
from app.config_file.loader import parse_config
from app.context import Context
from app.doctor.checks import Finding, passed, render, run_doctor
from tests.support.ci_fakes import FakeCircleCI
from tests.support.fake_apiserver import FakeApiServer
from tests.support.prom_data import Traffic, openmetrics, serve_history
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

END = 1_700_000_000
START = END - 30 * 60
STEP = 15
NOW = END - 60

SHOP = Traffic("shop", "1.0.0", codes={"200": 98, "500": 2}, latencies=[(0.05, 95), (0.75, 5)])
CART = Traffic("cart", "2.0.0", codes={"200": 50}, latencies=[(0.05, 50)])  # no 5xx series: not pre-initialised


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = serve_history(tmp_path_factory.mktemp("prom"), openmetrics([SHOP, CART], START, END, STEP))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def persistent_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis-aof"))
    client = redis.Redis.from_url(url)
    client.config_set("appendonly", "yes")
    client.close()
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backends = [
        HAProxyBackend("shop", {"1.0.0": free_port(), "1.0.1": free_port()}, {"1.0.0": 100}),
        HAProxyBackend("cart", {"2.0.0": free_port()}, {"2.0.0": 100}),
    ]
    proc, sock, _ = start_haproxy(tmp_path_factory.mktemp("haproxy"), backends)
    try:
        yield sock
    finally:
        proc.stop()


CONFIG = """
prometheus: {{url: "{prom}", timeout: 2s, namespace_label: namespace{prom_extra}}}
applications:
  - name: store
    namespace: prod
    router: {{type: haproxy, socket: "{sock}"}}
    services:
      - {{name: shop, stable_version: "{shop_stable}", policy: canary}}
      - {{name: cart, stable_version: "2.0.0", policy: canary}}
policies:
  - name: canary
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 100, duration: 1m}}]
    checks:
      - {{name: fast, type: latency, under: {under}, min: 0.9}}
{extra_checks}
metrics:
  p50:
    query: >-
      histogram_quantile(0.5, sum by (le)
      (rate(http_request_duration_seconds_bucket{{app="{{service}}",version="{{version}}"}}[{{window}}])))
hooks:
  - {{name: ci, type: webhook, on: [failed], url: "{hook_url}", secret_env: DOCTOR_TEST_SECRET}}
{more_hooks}
"""


def make_ctx(
    redis_url: str,
    prom: str,
    sock: str,
    *,
    shop_stable: str = "1.0.0",
    under: str = "1s",
    prom_extra: str = "",
    extra_checks: str = "",
    hook_url: str = "http://127.0.0.1:9/hook",
    more_hooks: str = "",
) -> Context:
    text = CONFIG.format(
        prom=prom,
        sock=sock,
        shop_stable=shop_stable,
        under=under,
        prom_extra=prom_extra,
        extra_checks=extra_checks,
        hook_url=hook_url,
        more_hooks=more_hooks,
    )
    return Context(config=parse_config(text), redis_url=redis_url)


def find(findings: list[Finding], name: str) -> Finding:
    matching = [f for f in findings if f.name == name]
    assert matching, f"no finding {name!r} in:\n{render(findings, markup=False)}"
    return matching[0]


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCTOR_TEST_SECRET", "s3cret")


def test_all_wired_passes_with_a_warning_for_unprepared_status_series(
    persistent_redis: str, prometheus: str, haproxy: str
) -> None:
    findings = run_doctor(make_ctx(persistent_redis, prometheus, haproxy), now=NOW)
    text = render(findings, markup=False)
    assert passed(findings), text
    assert find(findings, "redis").detail.startswith("reachable, persistent (AOF")
    assert find(findings, "store/shop metrics").status == "pass"
    assert find(findings, "store/shop status series").status == "pass"
    assert find(findings, "store/shop latency buckets").status == "pass"
    assert find(findings, "store/shop router").status == "pass"
    cart = find(findings, "store/cart status series")
    assert cart.status == "warn" and "only 200" in cart.detail and "pre-initialise" in cart.fix


def test_redis_without_persistence_fails(redis_url: str, prometheus: str, haproxy: str) -> None:
    f = find(run_doctor(make_ctx(redis_url, prometheus, haproxy), now=NOW), "redis")
    assert f.status == "fail" and "persists nothing" in f.detail and "appendonly yes" in f.fix


def test_redis_unreachable_fails(prometheus: str, haproxy: str) -> None:
    findings = run_doctor(make_ctx(f"redis://127.0.0.1:{free_port()}/0", prometheus, haproxy), now=NOW)
    f = find(findings, "redis")
    assert f.status == "fail" and "cannot reach Redis" in f.detail and "REDIS_URL" in f.fix
    assert not passed(findings)


def test_prometheus_unreachable_fails(persistent_redis: str, haproxy: str) -> None:
    findings = run_doctor(make_ctx(persistent_redis, f"http://127.0.0.1:{free_port()}", haproxy), now=NOW)
    f = find(findings, "prometheus")
    assert f.status == "fail" and "cannot reach" in f.detail and "prometheus.url" in f.fix
    assert not passed(findings)


def test_stable_version_label_mismatch_names_the_versions_prometheus_has(
    persistent_redis: str, prometheus: str, haproxy: str
) -> None:
    findings = run_doctor(make_ctx(persistent_redis, prometheus, haproxy, shop_stable="1.0.1"), now=NOW)
    f = find(findings, "store/shop metrics")
    assert f.status == "fail"
    assert 'version="1.0.0"' in f.detail and "version_label" in f.fix  # the series Prometheus does have


def test_wrong_service_label_fails(persistent_redis: str, prometheus: str, haproxy: str) -> None:
    findings = run_doctor(
        make_ctx(persistent_redis, prometheus, haproxy, prom_extra=", service_label: service"), now=NOW
    )
    f = find(findings, "store/shop metrics")
    assert f.status == "fail" and "for any version" in f.detail


def test_latency_bound_that_is_not_a_bucket_fails(persistent_redis: str, prometheus: str, haproxy: str) -> None:
    findings = run_doctor(make_ctx(persistent_redis, prometheus, haproxy, under="300ms"), now=NOW)
    f = find(findings, "store/shop latency buckets")
    assert f.status == "fail" and "0.3s" in f.detail and "0.25s" in f.detail and "bucket" in f.fix


def test_query_check_without_data_fails(persistent_redis: str, prometheus: str, haproxy: str) -> None:
    checks = "      - {name: p50-ok, type: query, metric: p50, max: 1}\n"
    ctx = make_ctx(persistent_redis, prometheus, haproxy, extra_checks=checks)
    findings = run_doctor(ctx, now=NOW)
    assert find(findings, "store/shop check 'p50-ok' (canary)").status == "pass"
    broken = "      - {name: p50-ok, type: query, metric: p50, max: 1}\n"
    ctx = make_ctx(persistent_redis, prometheus, haproxy, extra_checks=broken, prom_extra="")
    ctx.config.metrics["p50"] = ctx.config.metrics["p50"].model_copy(
        update={"query": 'sum(rate(no_such_metric{app="{service}"}[{window}]))'}
    )
    f = find(run_doctor(ctx, now=NOW), "store/shop check 'p50-ok' (canary)")
    assert f.status == "fail" and "no data" in f.detail


def test_haproxy_without_a_server_for_stable_fails(persistent_redis: str, prometheus: str, tmp_path: Path) -> None:
    proc, sock, _ = start_haproxy(
        tmp_path, [HAProxyBackend("shop", {"v1": free_port()}, {"v1": 100}), HAProxyBackend("other", {}, {})]
    )
    try:
        findings = run_doctor(make_ctx(persistent_redis, prometheus, sock), now=NOW)
    finally:
        proc.stop()
    shop = find(findings, "store/shop router")
    assert shop.status == "fail" and "no server named '1.0.0'" in shop.detail and "server 1.0.0" in shop.fix
    cart = find(findings, "store/cart router")  # no backend at all
    assert cart.status == "fail" and "cart" in cart.detail and "backend" in cart.fix


def test_hook_url_and_missing_secret_fail(
    persistent_redis: str, prometheus: str, haproxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCTOR_TEST_SECRET")
    slack = "  - {name: chat, type: slack, on: [failed], url_env: DOCTOR_SLACK_URL}\n"
    monkeypatch.setenv("DOCTOR_SLACK_URL", "not a url")
    findings = run_doctor(
        make_ctx(persistent_redis, prometheus, haproxy, hook_url="http://", more_hooks=slack), now=NOW
    )
    ci = find(findings, "hook ci")
    assert ci.status == "fail" and "not an http(s) URL" in ci.detail and "DOCTOR_TEST_SECRET" in ci.detail
    assert "export DOCTOR_TEST_SECRET" in ci.fix
    assert find(findings, "hook chat").status == "fail"


def test_circleci_token(persistent_redis: str, prometheus: str, haproxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCircleCI(token="good-token").start()
    try:
        monkeypatch.setenv("CIRCLECI_API_URL", fake.base)
        hook = "  - {name: approve, type: circleci_approve, on: [succeeded]}\n"
        monkeypatch.setenv("CIRCLECI_TOKEN", "good-token")
        ok = find(run_doctor(make_ctx(persistent_redis, prometheus, haproxy, more_hooks=hook), now=NOW), "circleci")
        assert ok.status == "pass" and "sluice-bot" in ok.detail
        monkeypatch.setenv("CIRCLECI_TOKEN", "revoked")
        bad = find(run_doctor(make_ctx(persistent_redis, prometheus, haproxy, more_hooks=hook), now=NOW), "circleci")
        assert bad.status == "fail" and "401" in bad.detail and "CIRCLECI_TOKEN" in bad.fix
    finally:
        fake.stop()


K8S_CONFIG = """
prometheus: {{url: "{prom}", namespace_label: namespace}}
applications:
  - name: store
    namespace: prod
    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s}}
    router: {{type: gateway-api}}
    services:
      - {{name: shop, stable_version: "1.0.0", policy: canary}}
policies:
  - name: canary
    steps: [{{weight: 10, duration: 1m}}, {{weight: 100, duration: 1m}}]
"""


def test_kubernetes_route_and_permissions(persistent_redis: str, prometheus: str, tmp_path: Path) -> None:
    from integrations.kubernetes.cluster import forget_clients

    api = FakeApiServer().start()
    try:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        text = K8S_CONFIG.format(prom=prometheus, kubeconfig=kubeconfig)
        ctx = Context(config=parse_config(text), redis_url=persistent_redis)
        findings = run_doctor(ctx, now=NOW)
        route = find(findings, "store/shop router")
        assert route.status == "fail" and "shop" in route.detail and "route object" in route.fix
        assert find(findings, "store kubernetes permissions").status == "pass"
        # The default identity is the worker's: it may not watch (only the watcher's account may).
        watch = find(findings, "store kubernetes watch")
        assert watch.status == "warn" and "watch deployments.apps" in watch.detail and "sluice-watcher" in watch.fix

        Sim(api, ns="prod").httproute("shop", "shop")
        api.denied = {("gateway.networking.k8s.io", "httproutes", "patch"), ("", "services", "create")}
        ctx = Context(config=parse_config(text), redis_url=persistent_redis)
        findings = run_doctor(ctx, now=NOW)
        assert find(findings, "store/shop router").status == "pass"
        perms = find(findings, "store kubernetes permissions")
        assert perms.status == "fail"
        assert "patch httproutes.gateway.networking.k8s.io" in perms.detail and "create services" in perms.detail
        assert "rbac.yaml" in perms.fix

        # Run as the watcher's account: it may watch, and may not write routes.
        api.denied = set()
        as_watcher = api.kubeconfig(tmp_path / "kubeconfig-watcher", service_account=("sluice", "sluice-watcher"))
        ctx = Context(
            config=parse_config(K8S_CONFIG.format(prom=prometheus, kubeconfig=as_watcher)), redis_url=persistent_redis
        )
        findings = run_doctor(ctx, now=NOW)
        assert find(findings, "store kubernetes watch").status == "pass"
        assert find(findings, "store kubernetes permissions").status == "fail"
    finally:
        api.stop()
        forget_clients()


def test_doctor_over_the_api_needs_the_token(
    persistent_redis: str, prometheus: str, haproxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import create_app
    from app.context import set_context
    from tests.support.web import AUTH, TOKEN

    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    set_context(make_ctx(persistent_redis, prometheus, haproxy))
    try:
        client = create_app().test_client()
        assert client.get("/api/v1/doctor").status_code == 401
        resp = client.get("/api/v1/doctor", headers=AUTH)
        assert resp.status_code == 200
        body = resp.get_json()
        assert {f["name"] for f in body["findings"]} >= {"redis", "prometheus", "store/shop router"}
    finally:
        set_context(None)
