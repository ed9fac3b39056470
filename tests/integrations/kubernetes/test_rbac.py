"""deploy/rbac.yaml, evaluated as the API server's RBAC authorizer would: Sluice's worker account may
make every call its routers make (and a release through each router passes the fake API server,
which authorizes every request with these rules); an account without the worker's grants is refused
403 and the router says so; and the manifest grants nothing Sluice does not call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from app.config_file.loader import parse_config
from app.context import Context
from integrations.kubernetes.permissions import SCALE_CALLS
from integrations.registry.routers import API_CALLS, ROUTERS
from integrations.routers.interface import RouterError
from tests.integrations.kubernetes import test_istio, test_traefik
from tests.support.cluster import CONFIG, setup_cluster
from tests.support.fake_apiserver import RESOURCES, FakeApiServer
from tests.support.kube_rbac import Rbac, Request, default_service_account, service_account_user
from tests.support.sim import GW, NS, Sim

pytestmark = pytest.mark.integration
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# Everything Sluice could be granted: the resources it uses, their subresources, and what it must
# never touch (secrets above all).
PROBED = {(g, p) for g, p in RESOURCES} | {
    ("apps", "deployments/scale"),
    ("apps", "deployments/status"),
    ("", "secrets"),
    ("", "configmaps"),
    ("", "pods/exec"),
    ("rbac.authorization.k8s.io", "rolebindings"),
}


def probe(rbac: Rbac, user: str, namespace: str | None) -> set[tuple[str, str, str]]:
    out = set()
    for (group, resource), verb in product(PROBED, VERBS):
        plain, _, sub = resource.partition("/")
        if rbac.allows(Request(user, verb, group, plain, sub or None, "x", namespace))[0]:
            out.add((group, resource, verb))
    return out


def test_the_manifest_grants_exactly_the_calls_sluice_makes_and_only_in_application_namespaces() -> None:
    rbac = Rbac.from_manifest(app_namespaces=("prod",))
    users = [service_account_user(ns, name) for ns, name in rbac.service_accounts()]
    assert users, "deploy/rbac.yaml declares no ServiceAccount"
    granted = set().union(*(probe(rbac, user, "prod") for user in users))
    assert granted == set(API_CALLS)
    for user in users:  # nothing outside the namespaces the RoleBinding is repeated into, nothing cluster-wide
        assert probe(rbac, user, "kube-system") == set()
        assert probe(rbac, user, None) == set()


def test_the_worker_may_make_every_call_of_every_router_and_of_scaling() -> None:
    rbac = Rbac.from_manifest(app_namespaces=("prod",))
    worker = service_account_user(*default_service_account(rbac))
    needed = set(SCALE_CALLS).union(*(ROUTERS[name].permissions for name in ROUTERS))
    missing = needed - probe(rbac, worker, "prod")
    assert not missing, f"{worker} lacks {missing}"


RULES = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: prod}
rules:
  - {apiGroups: [apps], resources: [deployments], verbs: [get, list]}
  - {apiGroups: [apps], resources: [deployments/scale], verbs: [patch], resourceNames: [web]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: bot}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything-in-gateway}
rules: [{apiGroups: [gateway.networking.k8s.io], resources: ["*"], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: everything-in-gateway}
subjects: [{kind: Group, name: "system:serviceaccounts:ops"}]
"""


@pytest.mark.parametrize(
    ("user", "verb", "group", "resource", "sub", "name", "ns", "allowed"),
    [
        ("system:serviceaccount:prod:bot", "get", "apps", "deployments", None, "web", "prod", True),
        ("system:serviceaccount:prod:bot", "watch", "apps", "deployments", None, None, "prod", False),  # verb
        ("system:serviceaccount:prod:bot", "get", "apps", "deployments", None, "web", "dev", False),  # namespace
        ("system:serviceaccount:dev:bot", "get", "apps", "deployments", None, "web", "prod", False),  # SA namespace
        ("system:serviceaccount:prod:bot", "get", "", "deployments", None, "web", "prod", False),  # API group
        ("system:serviceaccount:prod:bot", "patch", "apps", "deployments", "scale", "web", "prod", True),
        ("system:serviceaccount:prod:bot", "patch", "apps", "deployments", "scale", "api", "prod", False),  # name
        ("system:serviceaccount:prod:bot", "patch", "apps", "deployments", None, "web", "prod", False),  # not /scale
        ("system:serviceaccount:ops:ci", "delete", "gateway.networking.k8s.io", "httproutes", None, "x", "a", True),
        ("system:serviceaccount:ops:ci", "delete", "gateway.networking.k8s.io", "httproutes", None, "x", None, True),
        ("system:serviceaccount:dev:ci", "get", "gateway.networking.k8s.io", "httproutes", None, "x", "a", False),
    ],
)
def test_the_evaluator_matches_each_attribute_as_kubernetes_does(
    user: str, verb: str, group: str, resource: str, sub: str | None, name: str | None, ns: str | None, allowed: bool
) -> None:
    rbac = Rbac(list(yaml.safe_load_all(RULES)))
    assert rbac.allows(Request(user, verb, group, resource, sub, name, ns))[0] is allowed


# --- through the fake API server ----------------------------------------------------------------------------


def _cluster(router: str, sim: Sim, api: FakeApiServer) -> None:
    if router == "istio":
        test_istio.setup(sim, api)
    elif router == "traefik":
        test_traefik.setup(sim, api)
    else:
        setup_cluster(sim, router)
        sim.deployment("web", "1.1.0")


@pytest.fixture
def ctx_as(
    api: FakeApiServer, redis_url: str, tmp_path: Path
) -> Iterator[Callable[[str, tuple[str, str] | None], Context]]:
    made: list[Context] = []

    def make(router: str, account: tuple[str, str] | None) -> Context:
        path = api.kubeconfig(tmp_path / f"kubeconfig-{len(made)}", service_account=account)
        text = CONFIG.format(kubeconfig=path, router=router, web_extra=", stable_version: 1.0.0", cluster_extra="")
        made.append(Context(config=parse_config(text), redis_url=redis_url, prometheus_url="http://127.0.0.1:1"))
        return made[-1]

    yield make
    for ctx in made:
        ctx.prometheus.close()
        ctx.store.r.close()


@pytest.mark.parametrize("reader", ["sluice-watcher", "sluice-web"])
@pytest.mark.parametrize("router", ["gateway-api", "ingress-nginx", "contour", "istio", "traefik"])
def test_a_routers_calls_pass_as_the_worker_and_are_forbidden_to_another_account(
    router: str, reader: str, api: FakeApiServer, sim: Sim, ctx_as: Callable[..., Context]
) -> None:
    _cluster(router, sim, api)
    worker_ns, worker = default_service_account(api.rbac)
    # The watcher's account reads routers (to learn a stable version) and never writes them; nor does
    # the internet-facing web's, which hands promote, abort and rollback to the workers
    # (app/release/handoff.py; test_web_hands_steering_to_a_worker below).
    before = {key: obj["metadata"]["resourceVersion"] for key, obj in api.objects.items()}

    ctx = ctx_as(router, (worker_ns, reader))
    app = ctx.config.applications[0]
    svc = app.services[0]
    assert ctx.router(app).health(svc, "1.0.0").healthy is not False  # reading is allowed
    with pytest.raises(RouterError) as err:
        ctx.router(app).set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    msg = str(err.value)
    assert not err.value.retryable
    assert "the Kubernetes API refused Sluice (403 " in msg and "check its RBAC (deploy/rbac.yaml)" in msg, msg
    assert f'is forbidden: User "system:serviceaccount:{worker_ns}:{reader}" cannot ' in msg, msg
    assert f'in the namespace "{NS}"' in msg, msg
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in api.objects.items()} == before
    assert [w.status for w in api.writes if w.status < 300] == []

    refused = len(api.writes)
    ctx = ctx_as(router, (worker_ns, worker))
    app = ctx.config.applications[0]
    assert ctx.router(app).set_weights(app.services[0], {"1.0.0": 90, "1.1.0": 10}) == {"1.0.0": 90, "1.1.0": 10}
    assert api.writes[refused:] and {w.status for w in api.writes[refused:]} <= {200, 201}


def test_a_request_without_a_known_token_is_401_and_a_forbidden_one_reads_like_kubernetes(
    api: FakeApiServer, sim: Sim
) -> None:
    sim.httproute("web", "web")
    url = f"{api.url}/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/web"
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 401 and resp.json()["reason"] == "Unauthorized"
    resp = requests.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert resp.status_code == 401

    ns, _ = default_service_account(api.rbac)
    token = api.token_for(ns, "sluice-watcher")
    body: dict[str, Any] = {"spec": {"rules": []}}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    resp = requests.patch(url, json=body, headers=headers, timeout=5)
    status = resp.json()
    assert resp.status_code == 403 and status["kind"] == "Status" and status["reason"] == "Forbidden"
    assert status["message"] == (
        f'httproutes.gateway.networking.k8s.io "web" is forbidden: User "system:serviceaccount:{ns}:sluice-watcher" '
        f'cannot patch resource "httproutes" in API group "gateway.networking.k8s.io" in the namespace "{NS}"'
    )
    assert status["details"] == {"name": "web", "group": "gateway.networking.k8s.io", "kind": "httproutes"}
    assert len(api.get(*GW, NS, "web")["spec"]["rules"]) == 2  # type: ignore[index]
