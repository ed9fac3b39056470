"""The proxy's view on Kubernetes, against a REAL Prometheus scraping a local exporter
(tests/support/proxy_exporter.py) that serves each proxy's series as the real one names them.

The application reports only what reached it: clean. The proxy also answered 503 for 40 requests
that never reached the candidate (Istio: response_flags UF, an upstream connect failure). Through
observe (app/release/observe.py) and the judge, the candidate fails on the proxy's errors, and the
reason names the proxy; on the application's own metrics alone it would not have.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cli.demo.stack import start_prometheus
from app.config_file.loader import ConfigError, parse_config
from app.context import Context
from app.core.judge.judging import judge_step
from app.core.models import EvidenceObservation, Release, VersionCounts
from app.release.observe import observe_evidence
from integrations.kubernetes.proxy_series import SERIES, ServiceRoute, made_up_by_envoy
from integrations.prometheus.proxy_counts import proxy_template
from integrations.routers.proxy_view import ProxyQuery
from tests.support.proxy_exporter import ProxyExporter

pytestmark = pytest.mark.integration

STABLE, CANDIDATE = "1.0.0", "1.1.0"
OK_STABLE, OK_CANDIDATE, MADE_UP = 400, 100, 40

CONFIG = """
prometheus: {{url: "{prom}", timeout: 3s}}
applications:
  - name: shop
    namespace: prod
    cluster: {{in_cluster: true}}
    router: {router}
    services:
      - {{name: {service}, policy: canary, stable_version: {stable}, port: 8080}}
policies:
  - name: canary
    interval: 1s
    judge: {{warmup: 0s}}
    steps: [{{weight: 20}}, {{weight: 100}}]
"""

Emit = Callable[[ProxyExporter, str, str, str, float], None]  # (exporter, service, version, code, n)


def nginx(renamed: bool = False) -> Emit:
    ns, svc = ("exported_namespace", "exported_service") if renamed else ("namespace", "service")

    def emit(e: ProxyExporter, service: str, version: str, code: str, n: float) -> None:
        # the canary Ingress's requests: the primary's ingress and service, the canary upstream named
        canary = f"prod-{service}-{version.replace('.', '-')}-8080" if version == CANDIDATE else ""
        labels = {ns: "prod", "ingress": service, svc: f"{service}-1-0-0", "canary": canary, "status": code}
        if renamed:  # the scrape target's own labels, which made Prometheus rename the exporter's
            labels.update(namespace="ingress-nginx", service="ingress-nginx-controller-metrics")
        e.add("nginx_ingress_controller_requests", {**labels, "method": "GET", "host": "shop.example", "path": "/"}, n)

    return emit


def istio(subsets: bool = False) -> Emit:
    def emit(e: ProxyExporter, service: str, version: str, code: str, n: float) -> None:
        flags = "UF" if code == "503" else "-"
        name = service if subsets else f"{service}-{version.replace('.', '-')}"
        labels = {
            "destination_service_namespace": "prod",
            "destination_service_name": name,
            "destination_version": version,
            "response_code": code,
            "response_flags": flags,
        }
        e.add("istio_requests_total", {**labels, "reporter": "source", "source_workload": "gateway"}, n)
        if flags == "-":  # the destination's sidecar sees only what reached the application
            e.add("istio_requests_total", {**labels, "reporter": "destination"}, n)

    return emit


def traefik(e: ProxyExporter, service: str, version: str, code: str, n: float) -> None:
    name = f"prod-{service}-{version.replace('.', '-')}-8080@kubernetescrd"
    e.add("traefik_service_requests_total", {"service": name, "code": code, "method": "GET", "protocol": "http"}, n)


def envoy(e: ProxyExporter, service: str, version: str, code: str, n: float) -> None:
    cluster = f"prod_{service}-{version.replace('.', '-')}_8080"
    e.add("envoy_cluster_upstream_rq", {"envoy_cluster_name": cluster, "envoy_response_code": code}, n)


@dataclass(frozen=True)
class Case:
    service: str
    router: str
    emit: Emit
    source: str


CASES = [
    Case("nginx", "{type: ingress-nginx}", nginx(), "ingress-nginx"),
    Case(
        "nginx-renamed",
        "{type: ingress-nginx, proxy_metrics: {labels: {namespace: exported_namespace, service: exported_service}}}",
        nginx(renamed=True),
        "ingress-nginx",
    ),
    Case("mesh", "{type: istio}", istio(), "istio"),
    Case("mesh-subsets", "{type: istio, destinations: subsets}", istio(subsets=True), "istio"),
    Case("traefik", "{type: traefik}", traefik, "traefik"),
    Case("contour", "{type: contour}", envoy, "Envoy (Contour)"),
    Case("gateway", "{type: gateway-api, proxy_metrics: {series: contour}}", envoy, "Envoy (Contour)"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyExporter, str]]:
    exporter = ProxyExporter().start()
    proc, url = start_prometheus(Path(tmp_path_factory.mktemp("prom")), {"proxies": [exporter.target]}, "1s")
    try:
        scraping(url)
        yield exporter, url
    finally:
        proc.stop()
        exporter.stop()


def scraping(url: str, timeout: float = 30.0) -> None:
    """Wait for Prometheus's first scrape of the exporter (targets are loaded a few seconds after start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(f"{url}/api/v1/query", params={"query": 'up{job="proxies"} == 1'}, timeout=3).json()
        if answer["data"]["result"]:
            return
        time.sleep(0.5)
    raise AssertionError("Prometheus did not scrape the exporter")


def serve(exporter: ProxyExporter, case: Case) -> None:
    """Both versions' traffic: the app counts what reached it; the proxy also answered 503 itself."""
    for version, ok in ((STABLE, OK_STABLE), (CANDIDATE, OK_CANDIDATE)):
        exporter.add("http_requests_total", {"app": case.service, "version": version, "code": "200"}, ok)
        case.emit(exporter, case.service, version, "200", ok)
    case.emit(exporter, case.service, CANDIDATE, "503", MADE_UP)


def release_of(case: Case, started: float) -> Release:
    return Release(
        id=f"r-{case.service}",
        application="shop",
        namespace="prod",
        service=case.service,
        source_version=STABLE,
        target_version=CANDIDATE,
        policy="canary",
        state="running",
        step=0,
        step_started_at=started,
        desired_weights={STABLE: 80, CANDIDATE: 20},
        created_at=started,
        updated_at=started,
    )


def observed(ctx: Context, release: Release, now: float) -> EvidenceObservation:
    app, svc, policy = ctx.locate(release)
    evidence = observe_evidence(ctx, app, svc, policy, release, now)
    assert evidence is not None
    return evidence


@pytest.mark.parametrize("case", CASES, ids=[c.service for c in CASES])
def test_the_judge_fails_the_candidate_on_the_proxys_errors(
    stack: tuple[ProxyExporter, str], redis_url: str, case: Case
) -> None:
    exporter, prom = stack
    config = CONFIG.format(prom=prom, router=case.router, service=case.service, stable=STABLE)
    ctx = Context(config=parse_config(config), redis_url=redis_url, prometheus_url=prom)
    started = time.time()
    time.sleep(0.1)
    serve(exporter, case)
    time.sleep(2.5)  # two scrapes at 1s
    release, now = release_of(case, started), time.time()
    evidence = observed(ctx, release, now)

    # what the application saw: clean
    assert evidence.candidate.metrics is not None and evidence.candidate.metrics.by_class.get("5xx") == 0
    # what the proxy answered, per version, over the same span
    cand, stable = evidence.candidate.router, evidence.stable.router
    assert cand is not None and stable is not None, "the proxy's counts were not read"
    assert (cand.source, stable.source) == (case.source, case.source)
    assert cand.requests == OK_CANDIDATE + MADE_UP and stable.requests == OK_STABLE
    made_up = cand.proxy_errors if case.source == "istio" else cand.by_class["5xx"]
    assert made_up == MADE_UP  # Istio's flagged answers are the proxy's own; the others' are in the 503s
    assert stable.by_class["5xx"] + stable.proxy_errors == 0

    app, svc, policy = ctx.locate(release)
    judged = judge_step(policy, release, evidence, 0, now)
    errors = next(r for r in judged.results if r.name == "errors-vs-stable")
    assert errors.verdict == "fail", errors.detail
    assert case.source in errors.detail and "HAProxy" not in errors.detail  # where the counts came from

    # the same span on the application's metrics alone: no reason to fail
    blind = evidence.model_copy(
        update={
            "candidate": VersionCounts(metrics=evidence.candidate.metrics),
            "stable": VersionCounts(metrics=evidence.stable.metrics),
        }
    )
    alone = next(r for r in judge_step(policy, release, blind, 0, now).results if r.name == "errors-vs-stable")
    assert alone.verdict != "fail", alone.detail


def test_without_the_proxys_series_the_app_metrics_judge(stack: tuple[ProxyExporter, str], redis_url: str) -> None:
    """A proxy whose metrics are not scraped (or named otherwise) leaves the router counts empty:
    nothing breaks, the judge goes on with the application's metrics."""
    exporter, prom = stack
    case = Case("unscraped", "{type: istio}", istio(), "istio")
    config = CONFIG.format(prom=prom, router=case.router, service=case.service, stable=STABLE)
    ctx = Context(config=parse_config(config), redis_url=redis_url, prometheus_url=prom)
    started = time.time()
    time.sleep(0.1)
    for version, ok in ((STABLE, OK_STABLE), (CANDIDATE, OK_CANDIDATE)):
        exporter.add("http_requests_total", {"app": case.service, "version": version, "code": "200"}, ok)
    time.sleep(2.5)
    evidence = observed(ctx, release_of(case, started), time.time())
    assert evidence.candidate.metrics is not None and evidence.candidate.metrics.requests == OK_CANDIDATE
    assert evidence.candidate.router is None and evidence.stable.router is None


# --- what reaches PromQL, and the configuration's refusals ------------------------------------------


def test_names_reach_promql_escaped_and_odd_ones_are_refused() -> None:
    route = ServiceRoute("prod", "web", 8080, "web", ("1.0.0", "1.1.0"), {})
    promql = proxy_template(SERIES["traefik"](route))
    assert 'service=~"(prod\\\\-web\\\\-1\\\\-0\\\\-0\\\\-8080|prod\\\\-web\\\\-1\\\\-1\\\\-0\\\\-8080)@.+"' in promql
    with pytest.raises(ValueError, match="refusing the matcher"):
        ProxyQuery("x", "m", "code", (("service", "=", 'a"} or vector(1) #'),), ("code",), lambda labels: None)
    with pytest.raises(ValueError, match="not a label name"):
        ProxyQuery("x", "m", "code", (), ("code", "a-b"), lambda labels: None)


def test_a_bad_label_rename_is_refused_saying_what_a_label_name_is() -> None:
    with pytest.raises(ConfigError, match=r"labels: 'exported-service': not a Prometheus label name"):
        parse_config(
            CONFIG.format(
                prom="http://127.0.0.1:1",
                router="{type: ingress-nginx, proxy_metrics: {labels: {service: exported-service}}}",
                service="web",
                stable=STABLE,
            )
        )


@pytest.mark.parametrize(
    ("code", "flags", "made_up"),
    [("503", "UF", True), ("0", "UC", True), ("504", "UT,URX", True), ("503", "-", False), ("0", "DC", False)],
)
def test_what_envoy_made_up(code: str, flags: str, made_up: bool) -> None:
    assert made_up_by_envoy({"response_code": code, "response_flags": flags}) is made_up
