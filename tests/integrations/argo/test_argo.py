"""Argo CD and Argo Rollouts notifications: the ready-to-paste configs in integrations/argo/ render
(with a small stand-in for Go templates' field access, `index` and `toJson`) to bodies that
/hooks/argocd and /hooks/argo-rollouts accept, whatever the Content-Type."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.context import Context
from app.web import create_app
from integrations.argo.notifications import image_tag, split_image
from tests.support.ci import API_TOKEN, get

pytestmark = pytest.mark.integration
ARGO = Path(__file__).resolve().parents[3] / "integrations" / "argo"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _lookup(obj: Any, path: str) -> Any:
    for part in path.strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def render(template: str, data: dict[str, Any]) -> str:
    """Go-template subset used by our templates: {{.a.b | toJson}} and {{index .a.b "k" | toJson}}."""

    def expr(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        assert inner.endswith("| toJson"), f"every value must go through toJson: {inner}"
        inner = inner.removesuffix("| toJson").strip()
        if inner.startswith("index "):
            _, path, key = inner.split(" ", 2)
            value = (_lookup(data, path) or {}).get(json.loads(key))
        else:
            value = _lookup(data, inner)
        return json.dumps(value)

    return re.sub(r"\{\{(.*?)\}\}", expr, template)


def webhook_templates(name: str) -> dict[str, dict[str, Any]]:
    cm = yaml.safe_load((ARGO / name).read_text())
    assert cm["kind"] == "ConfigMap"
    data = cm["data"]
    assert "Bearer $sluice-token" in data["service.webhook.sluice"]
    out = {}
    for key, value in data.items():
        if key.startswith("template."):
            out[key.removeprefix("template.")] = yaml.safe_load(value)["webhook"]["sluice"]
        if key.startswith("trigger."):
            for trigger in yaml.safe_load(value):
                for sent in trigger["send"]:
                    assert f"template.{sent}" in data, f"{key} sends an undefined template {sent}"
    return out


ARGO_APP = {
    "metadata": {"name": "shop-api", "namespace": "argocd"},
    "spec": {"destination": {"namespace": "prod", "server": "https://kubernetes.default.svc"}},
    "status": {
        "sync": {"revision": "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796", "status": "Synced"},
        "health": {"status": "Healthy"},
        "operationState": {"phase": "Succeeded", "finishedAt": "2026-11-26T08:05:16Z"},
        "summary": {"images": ["ghcr.io/acme/api:2.0.371", "docker.io/library/redis:7"]},
    },
}


def test_argocd_template_renders_to_a_body_the_endpoint_accepts(ctx: Context) -> None:
    tpl = webhook_templates("argocd-notifications-cm.yaml")["sluice-deployed"]
    assert tpl["method"] == "POST" and tpl["path"] == "/hooks/argocd"
    body = render(tpl["body"], {"app": ARGO_APP})
    client = create_app().test_client()
    # No Content-Type at all, as Argo CD sends unless configured.
    resp = client.post("/hooks/argocd", data=body.encode(), headers=AUTH, content_type="")
    assert resp.status_code == 202, resp.get_json()
    rel = get(ctx, resp.get_json()["release"])
    assert (rel.service, rel.target_version, rel.trigger) == ("api", "2.0.371", "argocd")
    # The same (app, revision, finishedAt) again: a duplicate, not a second release.
    again = client.post("/hooks/argocd", data=body.encode(), headers={**AUTH, "Content-Type": "text/plain"})
    assert again.status_code == 200 and again.get_json()["release"] == rel.id


def test_argocd_revision_mapping_unknown_apps_and_auth(ctx: Context) -> None:
    client = create_app().test_client()
    note = {"app": "shop-web", "revision": "0d1c2b3a4f5e", "finishedAt": "t1", "phase": "Succeeded"}
    resp = client.post("/hooks/argocd", json=note, headers=AUTH)
    assert resp.status_code == 202 and get(ctx, resp.get_json()["release"]).target_version == "0d1c2b3a4f5e"
    unknown = client.post("/hooks/argocd", json={**note, "app": "other"}, headers=AUTH)
    assert unknown.status_code == 202 and unknown.get_json()["status"] == "ignored"
    failed = client.post("/hooks/argocd", json={**note, "phase": "Failed", "finishedAt": "t2"}, headers=AUTH)
    assert failed.get_json()["status"] == "ignored" and "Failed" in failed.get_json()["reason"]
    assert client.post("/hooks/argocd", json=note).status_code == 401
    assert client.post("/hooks/argocd", json=note, headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = client.post("/hooks/argocd", data=b"{not json", headers=AUTH)
    assert bad.status_code == 400 and "not valid JSON" in bad.get_json()["error"]
    ambiguous = client.post(
        "/hooks/argocd",
        json={"app": "shop-api", "images": ["a/x:1", "b/y:2"], "finishedAt": "t3"},
        headers=AUTH,
    )
    assert ambiguous.status_code == 400 and "set `image`" in ambiguous.get_json()["error"]


def test_rollouts_template_renders_and_starts_a_release(ctx: Context) -> None:
    templates = webhook_templates("argo-rollouts-notification-cm.yaml")
    rollout = {
        "metadata": {
            "name": "api-rollout",
            "namespace": "prod",
            "annotations": {"rollout.argoproj.io/revision": "7"},
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "api", "image": "ghcr.io/acme/api:2.0.380", "ports": [{"containerPort": 8080}]},
                        {"name": "proxy", "image": "envoyproxy/envoy:v1.30.1"},
                    ]
                }
            }
        },
        "status": {"phase": "Progressing", "currentPodHash": "6b7f9c8d5", "stableRS": "5d6c7b8a9"},
    }
    client = create_app().test_client()
    updated = render(templates["sluice-rollout-updated"]["body"], {"rollout": rollout})
    resp = client.post("/hooks/argo-rollouts", data=updated.encode(), headers=AUTH, content_type="")
    assert resp.status_code == 202, resp.get_json()
    rel = get(ctx, resp.get_json()["release"])
    assert (rel.service, rel.target_version, rel.trigger) == ("api", "2.0.380", "argo-rollouts")
    completed = render(templates["sluice-rollout-completed"]["body"], {"rollout": rollout})
    resp = client.post("/hooks/argo-rollouts", data=completed.encode(), headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["release"] == rel.id
    aborted = json.loads(updated) | {"event": "rollout-aborted"}
    assert client.post("/hooks/argo-rollouts", json=aborted, headers=AUTH).get_json()["status"] == "ignored"


def test_image_tags() -> None:
    assert split_image("registry:5000/org/web:1.0.371") == ("registry:5000/org/web", "1.0.371")
    assert split_image("registry:5000/org/web") == ("registry:5000/org/web", None)
    assert split_image("org/web@sha256:abc") == ("org/web", None)
    assert image_tag(["org/web:1.2"], None, "api") == "1.2"
    assert image_tag(["org/web:1.2", "org/api:3.4"], None, "api") == "3.4"
    assert image_tag(["org/web:1.2", "org/api:3.4"], "org/web", "api") == "1.2"
    with pytest.raises(ValueError, match="no tag"):
        image_tag(["org/api@sha256:abc"], None, "api")
    with pytest.raises(ValueError, match="no images"):
        image_tag([], None, "api")
