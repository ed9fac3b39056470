"""The (API group, resource, verb) calls Sluice makes whatever its routers. Each Kubernetes router
declares its own calls in its registry entry; integrations.registry.routers.API_CALLS is the union,
which the RBAC rules in deploy/ must equal (tests/k8s/test_deploy.py); the fake API server fails a
test that makes any other call."""

from __future__ import annotations

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

# Only the watcher (workers/watcher.py) watches; in deploy/ its service account alone may.
WATCH_CALLS: frozenset[tuple[str, str, str]] = frozenset({("apps", "deployments", "watch")})

# Scale with traffic (integrations/kubernetes/scaling.py): a version's replicas through the scale
# subresource, or the minReplicas of the HPA named like its Deployment.
SCALE_CALLS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("apps", "deployments/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "get"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
    }
)
