"""The talk's story against a Kubernetes API, for each router: a new Deployment appears next to the
old one, the watcher finds it, the release shifts traffic through the cluster's router in steps,
watches the pods and the metrics, and promotes or puts all traffic back on stable.

The API server is tests/support/fake_apiserver.py (real HTTP; the official client, unmocked), Prometheus
is the HTTP-level fake from tests/support/fakes.py, Redis is real, and the ticks run as the
scheduler would run them (tests/support/sim.py: Engine)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.context import Context
from app.core.models import Release
from tests.support.cluster import cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.fakes import FakePrometheus
from tests.support.sim import CONTOUR, GW, ING, NS, Sim, running_engine, running_watcher, wait_for

pytestmark = pytest.mark.integration
ROUTERS = ["gateway-api", "ingress-nginx", "contour"]
CI = {
    "circleci.com/workflow-id": "5f3c8c1e-3d1a-4b7a-9a55-0a7c2c6f1a11",
    "circleci.com/pipeline-id": "a1b2c3d4-0000-4000-8000-000000000001",
    "circleci.com/build-number": "371",
    "circleci.com/build-url": "https://app.circleci.com/pipelines/gh/bluesky/web/371",
    "circleci.com/job-name": "deploy-canary",
}


def wait_terminal(ctx: Context, rid: str, timeout: float = 20.0) -> Release:
    def done() -> Release | None:
        rel = ctx.store.get(rid)
        return rel if rel and rel.terminal and rel.weights_applied else None

    return wait_for(done, timeout, f"release {rid} to finish")


def release_started(ctx: Context) -> Callable[[], Any]:
    return lambda: (ctx.store.list_releases()[0] or [None])[0]


def weight_changes(api: FakeApiServer, router: str, since: float) -> list[float]:
    plural = {"gateway-api": "httproutes", "contour": "httpproxies", "ingress-nginx": "ingresses"}[router]
    return [w.at for w in api.writes if w.plural == plural and w.status < 300 and w.at >= since]


@pytest.mark.parametrize("router", ROUTERS)
def test_new_deployment_is_found_released_and_promoted(
    router: str,
    api: FakeApiServer,
    sim: Sim,
    prom: FakePrometheus,
    make_ctx: Callable[..., Context],
    as_watcher: Callable[[Context], Context],
) -> None:
    ctx = make_ctx(router)
    setup_cluster(sim, router)
    prom.serve("1.1.0", 2000, errors=20)  # 1% errors, as stable
    prom.serve("1.0.0", 18000, errors=180)
    with running_watcher(as_watcher(ctx)) as watcher, running_engine(ctx):
        wait_for(lambda: watcher.leading and all(w.lists for w in watcher.watches), what="the watcher to lead")
        time.sleep(0.2)
        assert ctx.store.list_releases()[1] == 0  # the running version is not a new one
        sim.deployment("web", "1.1.0", replicas=2, available=False, annotations=CI)
        time.sleep(0.3)
        assert ctx.store.list_releases()[1] == 0  # not available yet: no release
        available = sim.make_available("web", "1.1.0")
        rel = wait_for(release_started(ctx), what="the watcher to start a release")
        rel = wait_terminal(ctx, rel.id)
        first_change = weight_changes(api, router, available)[0]
    print(f"\n[{router}] Deployment available -> first weight change: {(first_change - available) * 1000:.0f} ms")

    assert rel.state == "succeeded", rel.reason
    assert rel.trigger == "kubernetes" and rel.source_version == "1.0.0" and rel.target_version == "1.1.0"
    assert rel.ci.provider == "circleci" and rel.ci.job_number == 371 and rel.ci.job_name == "deploy-canary"
    assert rel.ci.workflow_id == CI["circleci.com/workflow-id"] and rel.ci.build_url == CI["circleci.com/build-url"]
    set_events = [e.data["weights"] for e in ctx.store.events(rel.id) if e.type == "weights_set"]
    assert [w.get("1.1.0") for w in set_events] == [10, 50, 100]
    # The cluster's router object ends with all traffic on the new version.
    assert {v: w for v, w in cluster_weights(api, router).items() if w} == {"1.1.0": 100}
    assert ctx.store.stable_version("shop", "web") == "1.1.0"
    # Sluice's per-version Services: the version's pods only, and they go with their Deployment.
    svc = api.get("", "services", NS, "web-1-1-0")
    assert svc is not None
    assert svc["spec"]["selector"] == {"app": "web", "version": "1.1.0"}
    [owner] = svc["metadata"]["ownerReferences"]
    dep = api.get("apps", "deployments", NS, "web-1-1-0")
    assert dep is not None
    assert owner["kind"] == "Deployment" and owner["uid"] == dep["metadata"]["uid"]
    # Others' parts of the routing object are untouched.
    if router == "gateway-api":
        route = api.get(*GW, NS, "web")
        assert route is not None
        assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "cdn-proxy", "port": 80}]
        assert route["metadata"]["annotations"]["team"] == "shop"
        assert "web" not in [r["name"] for r in route["spec"]["rules"][1]["backendRefs"]]
    elif router == "contour":
        proxy = api.get(*CONTOUR, NS, "web")
        assert proxy is not None
        assert proxy["spec"]["routes"][0]["services"] == [{"name": "cdn-proxy", "port": 80}]
        assert proxy["spec"]["routes"][1]["timeoutPolicy"] == {"response": "5s"}
    else:
        primary = api.get(*ING, NS, "web")
        assert primary is not None
        assert primary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
        canary = api.get(*ING, NS, "web-sluice-canary")
        assert canary is not None and canary["spec"]["ingressClassName"] == "nginx"
        assert canary["spec"]["rules"][0]["host"] == "shop.example.com"


@pytest.mark.parametrize("router", ROUTERS)
def test_failing_metrics_put_all_traffic_back_on_stable(
    router: str,
    api: FakeApiServer,
    sim: Sim,
    prom: FakePrometheus,
    make_ctx: Callable[..., Context],
    as_watcher: Callable[[Context], Context],
) -> None:
    ctx = make_ctx(router)
    setup_cluster(sim, router)
    prom.serve("1.1.0", 2000, errors=600)  # 30% errors; stable none
    with running_watcher(as_watcher(ctx)) as watcher, running_engine(ctx):
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the watcher to list")
        sim.deployment("web", "1.1.0", replicas=2)
        rel = wait_for(release_started(ctx), what="a release")
        rel = wait_terminal(ctx, rel.id)
    assert rel.state == "failed" and rel.reason is not None and "errors" in rel.reason
    assert {v: w for v, w in cluster_weights(api, router).items() if w} == {"1.0.0": 100}
    assert api.get("apps", "deployments", NS, "web-1-1-0") is not None  # the failed Deployment is left alone
    assert ctx.store.stable_version("shop", "web") is None


@pytest.mark.parametrize("router", ROUTERS)
def test_restart_loop_fails_on_the_restart_check(
    router: str,
    api: FakeApiServer,
    sim: Sim,
    prom: FakePrometheus,
    make_ctx: Callable[..., Context],
    as_watcher: Callable[[Context], Context],
) -> None:
    ctx = make_ctx(router)
    setup_cluster(sim, router)
    # healthy counts for both versions (the prom fixture): only the restarts can fail the release
    with running_watcher(as_watcher(ctx)) as watcher, running_engine(ctx):
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the watcher to list")
        sim.deployment("web", "1.1.0", replicas=2)
        rel = wait_for(release_started(ctx), what="a release")
        wait_for(lambda: ctx.store.get(rel.id).state == "running", what="the first step")  # type: ignore[union-attr]
        sim.restart("web", "1.1.0", times=2, pod=0)  # 2: within the default limit of 2
        time.sleep(0.7)
        assert ctx.store.get(rel.id).state == "running"  # type: ignore[union-attr]
        sim.restart("web", "1.1.0", times=1, pod=1)  # 3 restarts since the release started
        rel = wait_terminal(ctx, rel.id)
    assert rel.state == "failed", rel.reason
    assert rel.reason is not None and "'restarts'" in rel.reason and "3 restarts" in rel.reason
    restarts = [e for e in ctx.store.evaluations(rel.id) if e.name == "restarts"]
    assert restarts[-1].verdict == "fail" and restarts[-1].value == 3 and restarts[-1].threshold == "<= 2"
    assert {v: w for v, w in cluster_weights(api, router).items() if w} == {"1.0.0": 100}
