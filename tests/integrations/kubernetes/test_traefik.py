"""The Traefik router against the fake API server: TraefikService weighted services, conflicts retried,
other writers' fields and entries kept, read-back, clear errors, health."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.context import Context
from app.release.intake import start_release
from integrations.routers.interface import RouterError
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import NS, Sim
from workers.tick import tick

pytestmark = pytest.mark.integration
TS = ("traefik.io", "traefikservices")


def tick_now(ctx: Context, rid: str) -> str:
    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


def traefikservice(api: FakeApiServer, name: str = "web", service: str = "web") -> None:
    api.apply(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "TraefikService",
            "metadata": {"name": name, "namespace": NS, "annotations": {"team": "shop"}},
            "spec": {
                "weighted": {
                    "services": [
                        {"name": "maintenance", "kind": "TraefikService", "weight": 0},
                        {
                            "name": service,
                            "kind": "Service",
                            "port": 8080,
                            "responseForwarding": {"flushInterval": "1ms"},
                        },
                    ],
                    "sticky": {"cookie": {"name": "lb"}},
                }
            },
        }
    )


def setup(sim: Sim, api: FakeApiServer) -> None:
    sim.root_service("web")
    sim.deployment("web", "1.0.0", replicas=3)
    sim.deployment("web", "1.1.0")
    traefikservice(api)


def entries(api: FakeApiServer, name: str = "web") -> list[dict[str, Any]]:
    obj = api.get(*TS, NS, name)
    assert obj is not None
    return list(obj["spec"]["weighted"]["services"])


def split(api: FakeApiServer) -> dict[str, int]:
    return {e["name"]: e.get("weight", 1) for e in entries(api)}


def router_and_service(ctx: Context) -> tuple[Any, Any]:
    app = ctx.config.applications[0]
    return ctx.router(app), app.services[0]


def test_loading_a_configuration_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys; from app.config_file.loader import parse_config; "
        "from integrations.registry.routers import ROUTERS; "
        "assert 'traefik' in ROUTERS; print('kubernetes' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[3]  # the repository, not tests/
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_set_weights_read_back_and_keep_the_rest(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("traefik", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}
    assert router.get_weights(svc) == {"1.0.0": 90, "1.1.0": 10}
    flush = {"flushInterval": "1ms"}
    assert entries(api) == [
        {"name": "maintenance", "kind": "TraefikService", "weight": 0},  # another entry: kept, first
        {"name": "web-1-0-0", "kind": "Service", "port": 8080, "responseForwarding": flush, "weight": 90},
        {"name": "web-1-1-0", "kind": "Service", "port": 8080, "responseForwarding": flush, "weight": 10},
    ]
    obj = api.get(*TS, NS, "web")
    assert obj is not None
    assert obj["spec"]["weighted"]["sticky"] == {"cookie": {"name": "lb"}}
    assert obj["metadata"]["annotations"] == {"team": "shop"}

    before = len(api.writes_to("traefikservices"))
    assert router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}  # idempotent
    assert len(api.writes_to("traefikservices")) == before
    assert router.set_weights(svc, {"1.1.0": 100}) == {"1.0.0": 0, "1.1.0": 100}
    assert split(api) == {"maintenance": 0, "web-1-0-0": 0, "web-1-1-0": 100}


def test_another_writer_between_read_and_write_both_changes_survive(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("traefik", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert tick_now(ctx, rid).startswith("start")

    def other_writer(obj: dict[str, Any]) -> None:
        obj["metadata"]["annotations"]["other-team/owner"] = "payments"
        obj["spec"]["weighted"]["sticky"]["cookie"]["secure"] = True
        obj["spec"]["weighted"]["services"].append({"name": "web", "namespace": "qa", "port": 80, "weight": 0})
        obj["spec"]["weighted"]["services"][1]["serversTransport"] = "mtls"  # on Sluice's entry for 1.0.0

    api.before_next_write(*TS, lambda: api.mutate(*TS, NS, "web", other_writer))
    before = len(api.writes)
    out = tick_now(ctx, rid)
    assert out.startswith("advance"), out

    statuses = [w.status for w in api.writes[before:] if w.plural == "traefikservices"]
    assert 409 in statuses and statuses[-1] == 200, statuses  # conflict, re-read, re-applied
    obj = api.get(*TS, NS, "web")
    assert obj is not None
    assert obj["metadata"]["annotations"] == {"team": "shop", "other-team/owner": "payments"}
    assert obj["spec"]["weighted"]["sticky"] == {"cookie": {"name": "lb", "secure": True}}
    services = obj["spec"]["weighted"]["services"]
    assert [(e["name"], e.get("weight")) for e in services] == [
        ("maintenance", 0),
        ("web-1-0-0", 50),
        ("web-1-1-0", 50),
        ("web", 0),  # the same name in another namespace: not this service
    ]
    assert services[1]["serversTransport"] == "mtls"
    rel = ctx.store.get(rid)
    assert rel is not None and rel.weights_applied


def test_a_traefikservice_rewritten_behind_sluices_back_is_caught_by_the_read_back(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("traefik", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})

    def revert(obj: dict[str, Any]) -> None:  # a GitOps controller puts its own copy back
        obj["spec"]["weighted"]["services"] = [{"name": "web-1-0-0", "port": 8080}]

    api.after_next_write(*TS, lambda: api.mutate(*TS, NS, "web", revert))
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 50, "1.1.0": 50})
    assert err.value.retryable and "TraefikService prod/web did not keep" in str(err.value)


def test_back_to_stable_after_the_candidates_deployment_was_deleted(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("traefik", web_extra=", stable_version: 1.0.0")
    setup(sim, api)
    sim.root_service("web-cache")  # another team's Service whose name looks like ours: left alone
    api.mutate(*TS, NS, "web", lambda o: o["spec"]["weighted"]["services"].append({"name": "web-cache", "port": 80}))
    router, svc = router_and_service(ctx)
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    api.delete("apps", "deployments", NS, "web-1-1-0")
    api.delete("", "services", NS, "web-1-1-0")  # what the garbage collector does next
    assert router.set_weights(svc, {"1.0.0": 100}) == {"1.0.0": 100}
    assert split(api) == {"maintenance": 0, "web-1-0-0": 100, "web-cache": 1}


def test_missing_unweighted_or_unrelated_traefikservice_is_a_clear_error(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("traefik", web_extra=", stable_version: 1.0.0, route: web-wrr")
    sim.root_service("web")
    sim.deployment("web", "1.0.0")
    router, svc = router_and_service(ctx)
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 100})
    msg = str(err.value)
    assert not err.value.retryable and msg.startswith("TraefikService prod/web-wrr not found")
    assert "create it with spec.weighted.services: [{name: web, port: 8080}]" in msg and "or set `route`" in msg
    with pytest.raises(RouterError, match="TraefikService prod/web-wrr not found"):
        router.get_weights(svc)

    api.apply(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "TraefikService",
            "metadata": {"name": "web-wrr", "namespace": NS},
            "spec": {"mirroring": {"name": "web", "port": 8080, "mirrors": [{"name": "web-shadow", "percent": 10}]}},
        }
    )
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 100})
    assert not err.value.retryable and "is not a weighted round robin (its spec has mirroring)" in str(err.value)

    api.delete(*TS, NS, "web-wrr")
    traefikservice(api, name="web-wrr", service="shop-frontend")
    with pytest.raises(RouterError) as err:
        router.set_weights(svc, {"1.0.0": 100})
    assert not err.value.retryable and "sends no traffic to service 'web'" in str(err.value)


def test_health_of_the_candidate(api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx("traefik")
    setup(sim, api)
    router, svc = router_and_service(ctx)
    health = router.health(svc, "1.1.0")
    assert health.healthy is True and "2/2 ready" in health.detail

    def lose_a_pod(dep: dict[str, Any]) -> None:
        dep["status"]["readyReplicas"] = dep["status"]["availableReplicas"] = 1

    api.mutate("apps", "deployments", NS, "web-1-1-0", lose_a_pod)
    health = router.health(svc, "1.1.0")
    assert health.healthy is False and "1/2 ready" in health.detail
