"""The Istio router against the fake API server: VirtualService route weights with per-version hosts or
DestinationRule subsets, conflicts retried, other writers' fields kept, read-back, clear errors, health."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.context import Context
from app.release.intake import start_release
from integrations.kubernetes.istio import host_service, subset_name, with_service
from integrations.routers.interface import RouterError
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import NS, Sim
from workers.tick import tick

pytestmark = pytest.mark.integration
VS = ("networking.istio.io", "virtualservices")
DR = ("networking.istio.io", "destinationrules")
SUBSETS = "istio, destinations: subsets"


def tick_now(ctx: Context, rid: str) -> str:
    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


def virtualservice(api: FakeApiServer, host: str = "web", name: str = "web") -> None:
    api.apply(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS, "annotations": {"team": "shop"}},
            "spec": {
                "hosts": ["shop.example.com"],
                "gateways": ["gateways/public"],
                "http": [
                    {
                        "name": "static",
                        "match": [{"uri": {"prefix": "/static"}}],
                        "route": [{"destination": {"host": "cdn-proxy", "port": {"number": 80}}}],
                    },
                    {
                        "name": "main",
                        "match": [{"uri": {"prefix": "/"}}],
                        "retries": {"attempts": 2},
                        "route": [
                            {
                                "destination": {"host": host, "port": {"number": 8080}},
                                "headers": {"response": {"set": {"x-served-by": "mesh"}}},
                            }
                        ],
                    },
                ],
            },
        }
    )


def destinationrule(api: FakeApiServer, subsets: list[dict[str, Any]] | None = None, host: str = "web") -> None:
    api.apply(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"host": host, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "subsets": subsets or []},
        }
    )


def setup(sim: Sim, api: FakeApiServer, subsets: bool = False, host: str = "web") -> None:
    sim.root_service("web")
    sim.deployment("web", "1.0.0", replicas=3)
    sim.deployment("web", "1.1.0")
    virtualservice(api, host)
    if subsets:
        destinationrule(api, [{"name": "stable", "labels": {"version": "1.0.0"}}])


def main_route(api: FakeApiServer) -> list[dict[str, Any]]:
    vs = api.get(*VS, NS, "web")
    assert vs is not None
    return list(vs["spec"]["http"][1]["route"])


def split(route: list[dict[str, Any]]) -> dict[str, int]:
    """destination (host or host/subset) -> weight, read straight from the object."""
    return {
        d["destination"]["host"] + ("/" + d["destination"]["subset"] if "subset" in d["destination"] else ""): d.get(
            "weight", 100
        )
        for d in route
    }


def router_and_service(ctx: Context) -> tuple[Any, Any]:
    app = ctx.config.applications[0]
    return ctx.router(app), app.services[0]


# --- pure helpers ---------------------------------------------------------------------------------------


def test_hosts_and_subset_names() -> None:
    assert [host_service(h, "prod") for h in ("web", "web.prod", "web.prod.svc", "web.prod.svc.cluster.local")] == [
        "web"
    ] * 4
    assert host_service("web.other.svc.cluster.local", "prod") is None
    assert host_service("example.com", "prod") is None
    assert with_service("web.prod.svc.cluster.local", "web-1-1-0") == "web-1-1-0.prod.svc.cluster.local"
    assert subset_name("1.2.0", set()) == "1-2-0"  # Istio refuses dots in a subset name
    taken = subset_name("1-2-0", {"1-2-0"})
    assert taken.startswith("1-2-0-") and len(taken) == len("1-2-0-") + 8
    long = subset_name("v" * 80, set())
    assert len(long) <= 63 and long[-9] == "-"


def test_loading_a_configuration_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys; from app.config_file.loader import parse_config; "
        "from integrations.registry.routers import ROUTERS; "
        "assert 'istio' in ROUTERS; print('kubernetes' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[3]  # the repository, not tests/
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


# --- destinations: hosts (per-version Services) -----------------------------------------------------------


@pytest.mark.parametrize("host", ["web", "web.prod.svc.cluster.local"])
def test_hosts_set_weights_read_back_and_keep_the_rest(
    host: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("istio", web_extra=", stable_version: 1.0.0")
    setup(sim, api, host=host)
    router, svc = router_and_service(ctx)
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}
    assert router.get_weights(svc) == {"1.0.0": 90, "1.1.0": 10}
    suffix = host[len("web") :]
    route = main_route(api)
    assert split(route) == {f"web-1-0-0{suffix}": 90, f"web-1-1-0{suffix}": 10}
    assert all(r["destination"]["port"] == {"number": 8080} for r in route)
    assert all(r["headers"] == {"response": {"set": {"x-served-by": "mesh"}}} for r in route)  # copied over
    vs = api.get(*VS, NS, "web")
    assert vs is not None
    assert vs["spec"]["http"][0]["route"] == [{"destination": {"host": "cdn-proxy", "port": {"number": 80}}}]
    assert vs["spec"]["http"][1]["retries"] == {"attempts": 2} and vs["spec"]["gateways"] == ["gateways/public"]
    assert vs["metadata"]["annotations"] == {"team": "shop"}
    assert {s["metadata"]["name"] for s in api.list("", "services", NS)} == {"web", "web-1-0-0", "web-1-1-0"}

    before = len(api.writes_to("virtualservices"))
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}  # idempotent
    assert len(api.writes_to("virtualservices")) == before
    assert router.set_weights(svc, {"1.1.0": 100}) == {"1.0.0": 0, "1.1.0": 100}
    assert split(main_route(api)) == {f"web-1-0-0{suffix}": 0, f"web-1-1-0{suffix}": 100}


def test_a_virtualservice_rewritten_behind_sluices_back_is_caught_by_the_read_back(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("istio", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})

    def revert(vs: dict[str, Any]) -> None:  # a GitOps controller puts its own copy back
        vs["spec"]["http"][1]["route"] = [{"destination": {"host": "web-1-0-0"}}]

    api.after_next_write(*VS, lambda: api.mutate(*VS, NS, "web", revert))
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 50, "1.1.0": 50})
    assert err.value.retryable and "VirtualService prod/web did not keep" in str(err.value)


def test_back_to_stable_after_the_candidates_deployment_was_deleted(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("istio", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    sim.root_service("web-cache")  # another team's Service whose name looks like ours: left alone
    extra = {"destination": {"host": "web-cache"}, "weight": 0}
    api.mutate(*VS, NS, "web", lambda vs: vs["spec"]["http"][1]["route"].append(extra))
    router, svc = router_and_service(ctx)
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    api.delete("apps", "deployments", NS, "web-1-1-0")
    api.delete("", "services", NS, "web-1-1-0")  # what the garbage collector does next
    assert router.set_weights(svc, {"1.0.0": 100}) == {"1.0.0": 100}
    assert split(main_route(api)) == {"web-1-0-0": 100, "web-cache": 0}


# --- destinations: subsets (DestinationRule) ---------------------------------------------------------------


def test_subsets_are_added_to_the_destinationrule_and_weighted(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(SUBSETS, web_extra=", stable_version: 1.0.0")
    setup(sim, api, subsets=True)
    api.mutate(  # another team's subset of the same pods, narrower than a version: not Sluice's
        *DR,
        NS,
        "web",
        lambda d: d["spec"]["subsets"].append({"name": "debug", "labels": {"version": "1.0.0", "debug": "on"}}),
    )
    router, svc = router_and_service(ctx)
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}
    assert router.get_weights(svc) == {"1.0.0": 90, "1.1.0": 10}
    rule = api.get(*DR, NS, "web")
    assert rule is not None
    assert rule["spec"]["subsets"] == [
        {"name": "stable", "labels": {"version": "1.0.0"}},  # an existing subset of the version is used
        {"name": "debug", "labels": {"version": "1.0.0", "debug": "on"}},
        {"name": "1-1-0", "labels": {"version": "1.1.0"}},
    ]
    assert rule["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}}
    route = main_route(api)
    assert split(route) == {"web/stable": 90, "web/1-1-0": 10}
    assert all(r["destination"]["port"] == {"number": 8080} for r in route)
    assert not [s for s in api.list("", "services", NS) if s["metadata"]["name"] != "web"]  # no per-version Services

    writes = len(api.writes_to("destinationrules"))
    assert router.set_weights(svc, {"1.0.0": 0, "1.1.0": 100}) == {"1.0.0": 0, "1.1.0": 100}
    assert len(api.writes_to("destinationrules")) == writes  # the subsets are there: nothing to add
    assert split(main_route(api)) == {"web/stable": 0, "web/1-1-0": 100}


def test_subsets_need_a_deployment_and_the_services_destinationrule(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(SUBSETS, web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    msg = str(err.value)
    assert not err.value.retryable and "DestinationRule prod/web not found" in msg
    assert "create it, or use `destinations: hosts`" in msg
    destinationrule(api, host="api")
    with pytest.raises(RouterError, match="is for host 'api', not the service 'web'"):
        router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    destinationrule(api)
    with pytest.raises(RouterError, match="no Deployment labelled app=web,version=1.3.0 in namespace prod"):
        router.set_weights(svc, {"1.0.0": 90, "1.3.0": 10})
    rule = api.get(*DR, NS, "web")
    assert rule is not None and rule["spec"]["subsets"] == []  # nothing added for a version without pods


# --- through the release engine: conflicts, other writers ---------------------------------------------------


@pytest.mark.parametrize("router", ["istio", SUBSETS])
def test_another_writer_between_read_and_write_both_changes_survive(
    router: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(router, web_extra=", stable_version: 1.0.0")
    setup(sim, api, subsets=router == SUBSETS)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert tick_now(ctx, rid).startswith("start")

    def other_writer(vs: dict[str, Any]) -> None:
        vs["metadata"]["annotations"]["other-team/owner"] = "payments"
        vs["spec"]["http"][1]["timeout"] = "3s"
        vs["spec"]["http"].insert(0, {"name": "canary-header", "route": [{"destination": {"host": "beta"}}]})

    api.before_next_write(*VS, lambda: api.mutate(*VS, NS, "web", other_writer))
    if router == SUBSETS:
        api.mutate(
            *DR, NS, "web", lambda d: d["spec"]["subsets"].remove({"name": "1-1-0", "labels": {"version": "1.1.0"}})
        )
        more = {"name": "blue", "labels": {"color": "blue"}}
        api.before_next_write(*DR, lambda: api.mutate(*DR, NS, "web", lambda d: d["spec"]["subsets"].append(more)))
    before = len(api.writes)
    out = tick_now(ctx, rid)
    assert out.startswith("advance"), out

    statuses = [w.status for w in api.writes[before:] if w.plural == "virtualservices"]
    assert 409 in statuses and statuses[-1] == 200, statuses  # conflict, re-read, re-applied
    vs = api.get(*VS, NS, "web")
    assert vs is not None
    assert vs["metadata"]["annotations"] == {"team": "shop", "other-team/owner": "payments"}
    assert vs["spec"]["http"][0] == {"name": "canary-header", "route": [{"destination": {"host": "beta"}}]}
    assert vs["spec"]["http"][2]["timeout"] == "3s" and vs["spec"]["http"][2]["retries"] == {"attempts": 2}
    expected = {"web/stable": 50, "web/1-1-0": 50} if router == SUBSETS else {"web-1-0-0": 50, "web-1-1-0": 50}
    assert split(vs["spec"]["http"][2]["route"]) == expected
    if router == SUBSETS:
        statuses = [w.status for w in api.writes[before:] if w.plural == "destinationrules"]
        assert statuses == [409, 200], statuses
        rule = api.get(*DR, NS, "web")
        assert rule is not None
        assert [s["name"] for s in rule["spec"]["subsets"]] == ["stable", "blue", "1-1-0"]
    rel = ctx.store.get(rid)
    assert rel is not None and rel.weights_applied


# --- errors and health ----------------------------------------------------------------------------------------


def test_a_missing_or_unrelated_virtualservice_is_a_clear_error(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("istio", web_extra=", stable_version: 1.0.0, route: web-vs")
    sim.root_service("web")
    sim.deployment("web", "1.0.0")
    router, svc = router_and_service(ctx)
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 100})
    msg = str(err.value)
    assert not err.value.retryable and msg.startswith("VirtualService prod/web-vs not found")
    assert "create it with an http route to host 'web', or set `route`" in msg
    with pytest.raises(RouterError, match="VirtualService prod/web-vs not found"):
        router.get_weights(svc)

    virtualservice(api, host="shop-frontend", name="web-vs")
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 100})
    assert not err.value.retryable and "sends no traffic to service 'web'" in str(err.value)


def test_health_of_the_candidate(api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx("istio")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    health = router.health(svc, "1.1.0")
    assert health.healthy is True and "2/2 ready" in health.detail

    def lose_a_pod(dep: dict[str, Any]) -> None:
        dep["status"]["readyReplicas"] = dep["status"]["availableReplicas"] = 1

    api.mutate("apps", "deployments", NS, "web-1-1-0", lose_a_pod)
    health = router.health(svc, "1.1.0")
    assert health.healthy is False and "1/2 ready" in health.detail
    health = router.health(svc, "9.9.9")
    assert health.healthy is False and "no Deployment of web 9.9.9" in health.detail
