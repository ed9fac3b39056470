"""The fake API server refuses what a real one refuses: objects that break their kind's schema (the
upstream CRD's for custom resources, Kubernetes' OpenAPI for built-in kinds) or the API server's Go
validation, with the real Status (422 Invalid and details.causes; 400 for a wrongly typed built-in
field or, under fieldValidation=Strict, an unknown one); an unknown field otherwise is dropped with a
Warning. A router whose write is refused says why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from app.context import Context
from app.core.config.shapes import SegmentConfig
from integrations.kubernetes.cluster import Kube
from integrations.kubernetes.config import ClusterConfig
from integrations.kubernetes.gateway_api import GatewayAPIRouter
from integrations.routers.interface import RouterError
from tests.integrations.kubernetes.test_istio import VS, virtualservice
from tests.support.cluster import setup_cluster
from tests.support.fake_apiserver import DEFAULT_TOKEN, FakeApiServer
from tests.support.kube_patch import strategic_merge_patch
from tests.support.sim import GW, NS, Sim

pytestmark = pytest.mark.integration
GATEWAY = ("gateway.networking.k8s.io", "v1")
ISTIO = ("networking.istio.io", "v1")
MERGE = "application/merge-patch+json"


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as err:
        call()
    return int(err.value.status), json.loads(err.value.body)


def causes(status: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["reason"]) for c in status["details"]["causes"]]


def test_an_httproute_with_a_negative_weight_or_a_nameless_backend_is_refused_422(
    api: FakeApiServer, sim: Sim, kubeconfig: Path
) -> None:
    sim.httproute("web", "web")
    before = api.get(*GW, NS, "web")
    kube = Kube(ClusterConfig(kubeconfig=str(kubeconfig), context="fake"))
    rules = [{"backendRefs": [{"name": "web", "port": 8080, "weight": -1}, {"port": 8080, "weight": 1}]}]
    code, status = refusal(
        lambda: kube.custom.patch_namespaced_custom_object(
            *GATEWAY, NS, "httproutes", "web", {"spec": {"rules": rules}}
        )
    )
    assert code == 422 and status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "HTTPRoute" and status["details"]["name"] == "web"
    assert causes(status) == [
        ("spec.rules[0].backendRefs[0].weight", "FieldValueInvalid"),
        ("spec.rules[0].backendRefs[1].name", "FieldValueRequired"),
    ]
    assert status["message"] == (
        'HTTPRoute.gateway.networking.k8s.io "web" is invalid: [spec.rules[0].backendRefs[0].weight: Invalid value: '
        "-1: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0, "
        "spec.rules[0].backendRefs[1].name: Required value]"
    )
    assert api.get(*GW, NS, "web") == before  # nothing stored


def test_a_virtualservice_with_a_wrongly_typed_or_missing_field_is_refused_422(
    api: FakeApiServer, kubeconfig: Path
) -> None:
    virtualservice(api)
    kube = Kube(ClusterConfig(kubeconfig=str(kubeconfig), context="fake"))
    http = [{"route": [{"destination": {"host": "web"}, "weight": "ten"}, {"destination": {"subset": "v2"}}]}]
    code, status = refusal(
        lambda: kube.custom.patch_namespaced_custom_object(
            *ISTIO, NS, "virtualservices", "web", {"spec": {"http": http}}
        )
    )
    assert code == 422
    assert causes(status) == [
        ("spec.http[0].route[0].weight", "FieldValueTypeInvalid"),
        ("spec.http[0].route[1].destination.host", "FieldValueRequired"),
    ]
    assert (
        'spec.http[0].route[0].weight: Invalid value: "ten": spec.http[0].route[0].weight in body must be of type '
        'integer: "string"'
    ) in status["message"]


def test_an_unknown_field_is_dropped_with_a_warning_and_refused_under_strict_validation(api: FakeApiServer) -> None:
    virtualservice(api)
    url = f"{api.url}/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/web"
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Content-Type": "application/merge-patch+json"}
    http = api.get(*VS, NS, "web")["spec"]["http"]  # type: ignore[index]
    http[1]["route"][0]["wieght"] = 5
    resp = requests.patch(url + "?fieldValidation=Strict", json={"spec": {"http": http}}, headers=headers, timeout=5)
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "spec.http[1].route[0].wieght"' in resp.json()["message"]

    resp = requests.patch(url, json={"spec": {"http": http}}, headers=headers, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Warning"] == '299 - "unknown field \\"spec.http[1].route[0].wieght\\""'
    assert "wieght" not in json.dumps(api.get(*VS, NS, "web"))
    assert api.warnings == ['unknown field "spec.http[1].route[0].wieght"']
    api.warnings.clear()  # seen: the fixture fails a test that leaves any


def test_built_in_objects_get_the_api_servers_go_validation(api: FakeApiServer, sim: Sim, kubeconfig: Path) -> None:
    kube = Kube(ClusterConfig(kubeconfig=str(kubeconfig), context="fake"))
    service = {"metadata": {"name": "web-1.1.0"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    code, status = refusal(lambda: kube.core.create_namespaced_service(NS, service))
    assert code == 422 and causes(status) == [("metadata.name", "FieldValueInvalid")]
    assert status["message"].startswith(
        'Service "web-1.1.0" is invalid: metadata.name: Invalid value: "web-1.1.0": a DNS-1035 label must consist'
    )

    sim.deployment("web", "1.0.0")
    api.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web-1-0-0", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-1-0-0"},
                "minReplicas": 1,
                "maxReplicas": 5,
            },
        }
    )
    hpa = client.AutoscalingV2Api(kube.api)

    def patch_hpa(body: dict[str, Any]) -> Any:
        return hpa.patch_namespaced_horizontal_pod_autoscaler("web-1-0-0", NS, body, _content_type=MERGE)

    code, status = refusal(lambda: patch_hpa({"spec": {"minReplicas": 0}}))
    assert code == 422
    assert status["message"] == (
        'HorizontalPodAutoscaler.autoscaling "web-1-0-0" is invalid: spec.minReplicas: Invalid value: 0: '
        "must be greater than or equal to 1"
    )
    code, status = refusal(lambda: patch_hpa({"spec": {"minReplicas": "two"}}))
    assert code == 400 and "cannot be handled as a HorizontalPodAutoscaler" in status["message"]


def test_a_segment_rule_past_gateway_apis_16_rules_is_refused_and_the_router_says_why(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx("gateway-api", web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0")
    full = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": f"/team-{i}"}}],
            "backendRefs": [{"name": f"t{i}", "port": 80}],
        }
        for i in range(14)
    ]

    def fill(route: dict[str, Any]) -> None:
        route["spec"]["rules"] = full + route["spec"]["rules"]  # 16 rules: the most an HTTPRoute holds

    api.mutate(*GW, NS, "web", fill)
    before = api.get(*GW, NS, "web")
    app = ctx.config.applications[0]
    segment = SegmentConfig.model_validate({"header": {"name": "X-Beta", "value": "yes"}})
    with pytest.raises(RouterError) as err:
        router = ctx.router(app)
        assert isinstance(router, GatewayAPIRouter)
        router.set_segment(app.services[0], "1.1.0", segment)
    assert not err.value.retryable
    assert str(err.value) == (
        "writing HTTPRoute prod/web: the Kubernetes API rejected the change (422 HTTPRoute.gateway.networking.k8s.io "
        '"web" is invalid: spec.rules: Too many: 17: must have at most 16 items)'
    )
    assert api.get(*GW, NS, "web") == before


def test_strategic_merge_merges_keyed_lists_and_replaces_the_others() -> None:
    pod_spec = {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]}, {"name": "sc"}]}
    patch = {"containers": [{"name": "app", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}]}
    assert strategic_merge_patch(pod_spec, patch) == {
        "containers": [
            {"name": "app", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "sc"},
        ]
    }
    ingress = {"rules": [{"host": "a"}, {"host": "b"}], "tls": [{"hosts": ["a"]}]}
    assert strategic_merge_patch(ingress, {"rules": [{"host": "c"}]}) == {
        "rules": [{"host": "c"}],
        "tls": [{"hosts": ["a"]}],
    }
    service = {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}
    merged = strategic_merge_patch(service, {"ports": [{"port": 443, "$patch": "delete"}, {"port": 8080, "name": "x"}]})
    assert merged == {"ports": [{"port": 80, "name": "http"}, {"port": 8080, "name": "x"}]}
