"""Every (API group, resource, verb) Sluice uses. The RBAC rules in deploy/ must be exactly these
(tests/k8s/test_deploy.py), and the fake API server fails a test that makes any other call."""

from __future__ import annotations

API_CALLS: frozenset[tuple[str, str, str]] = frozenset(
    {
        # the watcher (list + watch) and cluster health / per-version Service owners (list)
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        # cluster health: container restarts of the candidate's pods
        ("", "pods", "list"),
        # per-version Services: read, find Sluice's own by label, create
        ("", "services", "get"),
        ("", "services", "list"),
        ("", "services", "create"),
        # ingress-nginx: read the service's Ingress, create and steer the canary Ingress
        ("networking.k8s.io", "ingresses", "get"),
        ("networking.k8s.io", "ingresses", "create"),
        ("networking.k8s.io", "ingresses", "patch"),
        # Gateway API and Contour: read and merge-patch weights
        ("gateway.networking.k8s.io", "httproutes", "get"),
        ("gateway.networking.k8s.io", "httproutes", "patch"),
        ("projectcontour.io", "httpproxies", "get"),
        ("projectcontour.io", "httpproxies", "patch"),
    }
)
