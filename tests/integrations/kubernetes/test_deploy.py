"""deploy/: the manifests load and hang together (their RBAC is evaluated in test_rbac.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.config_file.loader import parse_config
from integrations.registry.routers import API_CALLS, ROUTERS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def load() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


Call = tuple[str, str, str]
WATCH: Call = ("apps", "deployments", "watch")
ROUTER_CALLS: frozenset[Call] = frozenset().union(*(ROUTERS[name].permissions for name in ROUTERS))
# What each process calls (see deploy/rbac.yaml): the watcher watches Deployments and reads the router
# to learn a stable version; the web only reads (it hands promote, abort and rollback to the workers,
# app/release/handoff.py) and checks a rollback's target is up; the worker does everything a tick
# does. Only the watcher watches; only the worker writes.
ROUTER_READS: frozenset[Call] = frozenset(c for c in ROUTER_CALLS if c[2] == "get")
EXPECTED: dict[str, frozenset[Call]] = {
    "sluice-watcher": frozenset({("apps", "deployments", "list"), WATCH, ("", "services", "list")}) | ROUTER_READS,
    "sluice-web": frozenset({("apps", "deployments", "list"), ("", "services", "get"), ("", "services", "list")})
    | ROUTER_READS,
    "sluice-worker": API_CALLS - {WATCH},
}


def granted(rules: list[dict[str, Any]]) -> set[Call]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_is_exactly_the_calls_each_process_makes() -> None:
    docs = load()
    roles, bindings, accounts = (by_kind(docs, k) for k in ("ClusterRole", "RoleBinding", "ServiceAccount"))
    assert not by_kind(docs, "ClusterRoleBinding"), "Sluice needs no cluster-wide grant"
    assert "*" not in str([r["rules"] for r in roles.values()])
    assert set(accounts) == set(EXPECTED)
    allowed: dict[str, set[Call]] = {name: set() for name in accounts}
    for binding in bindings.values():
        assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        assert binding["roleRef"]["kind"] == "ClusterRole"
        rules = roles[binding["roleRef"]["name"]]["rules"]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["namespace"] == accounts[subject["name"]]["metadata"]["namespace"]
            allowed[subject["name"]] |= granted(rules)
    assert allowed == EXPECTED
    assert set().union(*allowed.values()) == set(API_CALLS), "every call Sluice makes is granted to someone"
    for reader in ("sluice-watcher", "sluice-web"):
        assert not any(verb in ("create", "patch") for _, _, verb in allowed[reader]), reader


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
        assert pod["serviceAccountName"] == f"sluice-{name}"
        sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"configMapRef": "sluice-env", "secretRef": "sluice-secrets"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["volumes"][0]["configMap"]["name"] == "sluice-config"
    web = deployments["sluice-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for name in ("worker", "watcher"):  # no HTTP: a heartbeat file's age (workers/liveness.py)
        [container] = deployments[f"sluice-{name}"]["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["exec"]["command"][:5] == ["python", "-m", "workers.liveness", "check", name]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The web may not write the router (test_rbac_is_exactly_the_calls_each_process_makes): it hands
    # promote, abort and rollback to the workers (app/release/handoff.py), which must steer.
    assert {"name": "SLUICE_WEB_STEERS", "value": "false"} in web["env"]
    for name in ("worker", "watcher"):
        [other] = deployments[f"sluice-{name}"]["spec"]["template"]["spec"]["containers"]
        assert "SLUICE_WEB_STEERS" not in str(other)
    assert deployments["sluice-watcher"]["spec"]["replicas"] == 2  # a leader and a standby
    assert (
        by_kind(docs, "Deployment")["sluice-redis"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    )

    configmaps = by_kind(docs, "ConfigMap")
    env = configmaps["sluice-env"]["data"]
    # REDIS_URL is assembled in each container from this address and the Secret's password
    # (tests/deploy/test_manifests.py runs it)
    assert env["SLUICE_CONFIG"] == "/etc/sluice/sluice.yaml" and "REDIS_URL" not in env
    assert env["REDIS_ADDRESS"] == "sluice-redis.sluice.svc:6379/0"
    assert not any(k.endswith(("TOKEN", "SECRET")) for k in env), "secrets belong in the Secret"
    config = parse_config(configmaps["sluice-config"]["data"]["sluice.yaml"], "deploy/config.yaml")
    [app] = config.applications
    assert app.router.type == "gateway-api" and app.cluster is not None and app.cluster.in_cluster

    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    [secret] = kustomization["secretGenerator"]
    assert secret["name"] == "sluice-secrets" and (DEPLOY / "secrets.env.example").exists()
    services = by_kind(docs, "Service")
    assert services["sluice"]["spec"]["ports"][0]["targetPort"] == "http"
