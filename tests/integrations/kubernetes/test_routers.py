"""Router details against the fake API server: conflicts, read-back, cluster health, configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.config_file.loader import ConfigError, parse_config
from app.context import Context
from app.release.intake import start_release
from integrations.kubernetes.cluster import Kube
from integrations.kubernetes.config import ClusterConfig
from integrations.kubernetes.ingress_nginx import CANARY_WEIGHT
from integrations.routers.interface import RouterError
from tests.support.cluster import CONFIG, cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.fakes import FakePrometheus
from tests.support.sim import CONTOUR, GW, ING, NS, Sim
from workers.tick import tick

pytestmark = pytest.mark.integration


def tick_now(ctx: Context, rid: str) -> str:
    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


@pytest.mark.parametrize("router", ["gateway-api", "ingress-nginx", "contour"])
def test_another_writer_between_read_and_write_both_changes_survive(
    router: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(router, web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, router)
    sim.deployment("web", "1.1.0")
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert tick_now(ctx, rid).startswith("start")
    group, plural, name = {
        "gateway-api": (*GW, "web"),
        "contour": (*CONTOUR, "web"),
        "ingress-nginx": (*ING, "web-sluice-canary"),
    }[router]

    def other_writer(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("annotations", {})["other-team/owner"] = "payments"
        if router == "gateway-api":
            obj["spec"]["rules"][0]["filters"] = [{"type": "RequestHeaderModifier"}]
        if router == "contour":
            obj["spec"]["routes"][0]["timeoutPolicy"] = {"response": "1s"}

    api.before_next_write(group, plural, lambda: api.mutate(group, plural, NS, name, other_writer))
    before = len(api.writes)
    out = tick_now(ctx, rid)
    assert out.startswith("advance"), out

    statuses = [w.status for w in api.writes[before:] if w.plural == plural]
    assert 409 in statuses and statuses[-1] == 200, statuses  # conflict, re-read, re-applied
    obj = api.get(group, plural, NS, name)
    assert obj is not None
    assert obj["metadata"]["annotations"]["other-team/owner"] == "payments"
    if router == "gateway-api":
        assert obj["spec"]["rules"][0]["filters"] == [{"type": "RequestHeaderModifier"}]
        assert obj["metadata"]["annotations"]["team"] == "shop"
    if router == "contour":
        assert obj["spec"]["routes"][0]["timeoutPolicy"] == {"response": "1s"}
    if router == "ingress-nginx":
        assert obj["metadata"]["annotations"][CANARY_WEIGHT] == "50"
    assert {v: w for v, w in cluster_weights(api, router).items() if w} == {"1.0.0": 50, "1.1.0": 50}
    rel = ctx.store.get(rid)
    assert rel is not None and rel.weights_applied


def test_a_router_object_rewritten_behind_sluices_back_is_caught_by_the_read_back(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("gateway-api", web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0")
    router = ctx.router(ctx.config.applications[0])
    svc = ctx.config.applications[0].services[0]
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}
    assert router.get_weights(svc) == {"1.0.0": 90, "1.1.0": 10}
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}  # idempotent

    def revert(route: dict[str, Any]) -> None:  # a GitOps controller puts its own copy back
        route["spec"]["rules"][1]["backendRefs"] = [{"name": "web", "port": 8080}]

    api.after_next_write(*GW, lambda: api.mutate(*GW, NS, "web", revert))
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 50, "1.1.0": 50})
    assert err.value.retryable and "did not keep" in str(err.value)


@pytest.mark.parametrize("router", ["gateway-api", "contour"])
def test_back_to_stable_after_the_candidates_deployment_was_deleted(
    router: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    """The candidate's Service goes with its Deployment (ownerReference): a rollback must still take
    all traffic off it, not leave its share on a backend that no longer exists."""
    ctx = make_ctx(router, web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, router)
    sim.deployment("web", "1.1.0")
    sim.root_service("web-cache")  # another team's Service whose name looks like ours: left alone
    group, plural = GW if router == "gateway-api" else CONTOUR
    rules, refs = ("rules", "backendRefs") if router == "gateway-api" else ("routes", "services")
    api.mutate(group, plural, NS, "web", lambda o: o["spec"][rules][1][refs].append({"name": "web-cache", "port": 80}))
    router_ = ctx.router(ctx.config.applications[0])
    svc = ctx.config.applications[0].services[0]
    router_.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    api.delete("apps", "deployments", NS, "web-1-1-0")
    api.delete("", "services", NS, "web-1-1-0")  # what the garbage collector does next

    assert router_.set_weights(svc, {"1.0.0": 100}) == {"1.0.0": 100}  # stable_weights(): the candidate unnamed
    obj = api.get(group, plural, NS, "web")
    assert obj is not None
    assert [(r["name"], r.get("weight", 1)) for r in obj["spec"][rules][1][refs]] == [
        ("web-1-0-0", 100),
        ("web-cache", 1),
    ]


def test_version_without_deployment_fails_the_release_to_stable(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("gateway-api", web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, "gateway-api")
    rid = start_release(ctx, "web", "1.3.0", trigger="webhook").release.id  # announced, never deployed
    tick_now(ctx, rid)
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "failed"
    assert rel.reason is not None and "no Deployment labelled app=web,version=1.3.0" in rel.reason
    assert {v: w for v, w in cluster_weights(api, "gateway-api").items() if w} == {"1.0.0": 100}


def test_progress_deadline_exceeded_fails_at_once(
    api: FakeApiServer, sim: Sim, prom: FakePrometheus, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("contour")
    sim.deployment("api", "2.0.0")
    sim.deployment("api", "2.1.0")
    sim.httpproxy("api", "api", port=9000)
    rid = start_release(ctx, "api", "2.1.0").release.id
    assert tick_now(ctx, rid).startswith("start")
    assert tick_now(ctx, rid).startswith("advance")  # healthy: 2/2 ready, no restarts
    sim.deadline_exceeded("api", "2.1.0")
    out = tick_now(ctx, rid)
    assert out.startswith("fail") and "ProgressDeadlineExceeded" in out, out
    results = {e.name: e for e in ctx.store.evaluations(rid)}
    assert results["rollout"].verdict == "fail"
    proxy = api.get(*CONTOUR, NS, "api")
    assert proxy is not None
    assert {r["name"]: r["weight"] for r in proxy["spec"]["routes"][1]["services"]} == {
        "api-2-0-0": 100,
        "api-2-1-0": 0,
    }


def test_unavailable_candidate_fails_the_health_check(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("gateway-api")
    sim.deployment("api", "2.0.0")
    sim.deployment("api", "2.1.0")
    sim.httproute("api", "api", port=9000)
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick_now(ctx, rid)

    def lose_a_pod(dep: dict[str, Any]) -> None:
        dep["status"]["readyReplicas"] = dep["status"]["availableReplicas"] = 1

    api.mutate("apps", "deployments", NS, "api-2-1-0", lose_a_pod)
    out = tick_now(ctx, rid)
    assert out.startswith("fail") and "'health'" in out and "1/2 ready" in out, out


def test_kubernetes_router_needs_a_cluster(kubeconfig: Path) -> None:
    text = CONFIG.format(kubeconfig=kubeconfig, router="contour", web_extra="", cluster_extra="")
    text = text.replace(f'    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s}}\n', "")
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert "needs `cluster`" in err.value.render()


def test_in_cluster_falls_back_to_the_kubeconfig(api: FakeApiServer, kubeconfig: Path) -> None:
    kube = Kube(ClusterConfig(in_cluster=True, kubeconfig=str(kubeconfig), context="fake"))
    body = kube.raw(kube.core.list_namespaced_service, NS)
    assert body["kind"] == "ServiceList"


def test_unknown_context_is_a_clear_error(kubeconfig: Path) -> None:
    with pytest.raises(RouterError) as err:
        Kube(ClusterConfig(kubeconfig=str(kubeconfig), context="nope"))
    assert not err.value.retryable and "nope" in str(err.value)
