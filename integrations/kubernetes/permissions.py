"""Every (API group, resource, verb) Sluice uses. The RBAC rules in deploy/ must be exactly these
(tests/k8s/test_deploy.py), and the fake API server fails a test that makes any other call.
Each Kubernetes router declares its own calls in the router registry; the rest are here."""

from __future__ import annotations

from integrations.routers.registry import ROUTERS

COMMON_CALLS: frozenset[tuple[str, str, str]] = frozenset(
    {
        # the watcher (list + watch) and cluster health / per-version Service owners (list)
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        # cluster health: container restarts of the candidate's pods
        ("", "pods", "list"),
        # per-version Services (every Kubernetes router): read, find Sluice's own by label, create
        ("", "services", "get"),
        ("", "services", "list"),
        ("", "services", "create"),
    }
)
API_CALLS: frozenset[tuple[str, str, str]] = COMMON_CALLS.union(*(ROUTERS[name].permissions for name in ROUTERS))
