"""deploy/: the manifests load and hang together (their RBAC is evaluated in test_rbac.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.config import parse_config

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def load() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_processes_configuration_secrets_and_probes() -> None:
    docs = load()
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"sluice-web", "sluice-worker", "sluice-watcher", "sluice-redis"}
    procfile = (DEPLOY.parent / "Procfile").read_text()
    assert "watcher: sluice watcher" in procfile
    for name, command in (("web", "serve"), ("worker", "worker"), ("watcher", "watcher")):
        pod = deployments[f"sluice-{name}"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == ["sluice"] and container["args"][0] == command
        assert pod["serviceAccountName"] == "sluice"
        sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"configMapRef": "sluice-env", "secretRef": "sluice-secrets"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["volumes"][0]["configMap"]["name"] == "sluice-config"
    web = deployments["sluice-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployments["sluice-watcher"]["spec"]["replicas"] == 2  # a leader and a standby
    assert (
        by_kind(docs, "Deployment")["sluice-redis"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    )

    configmaps = by_kind(docs, "ConfigMap")
    env = configmaps["sluice-env"]["data"]
    assert env["SLUICE_CONFIG"] == "/etc/sluice/sluice.yaml" and env["REDIS_URL"].startswith("redis://")
    assert not any(k.endswith(("TOKEN", "SECRET")) for k in env), "secrets belong in the Secret"
    config = parse_config(configmaps["sluice-config"]["data"]["sluice.yaml"], "deploy/config.yaml")
    [app] = config.applications
    assert app.router.type == "gateway-api" and app.cluster is not None and app.cluster.in_cluster

    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    [secret] = kustomization["secretGenerator"]
    assert secret["name"] == "sluice-secrets" and (DEPLOY / "secrets.env.example").exists()
    services = by_kind(docs, "Service")
    assert services["sluice"]["spec"]["ports"][0]["targetPort"] == "http"
