"""What every Kubernetes router shares: the cluster, Sluice's per-version Services, health from the
version's Deployment, and the read-back check after a change (like the HAProxy router's).

Each router is a module of its own (gateway_api.py, ingress_nginx.py, contour.py, istio.py,
traefik.py) holding its configuration model, its API calls, its class and its registry entry
(`KIND`). Nothing here imports the kubernetes client at the top (cluster.py loads it when a client
is built), so the registry can import every router with the configuration.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.cluster import Kube, api_error
from integrations.kubernetes.objects import (
    ensure_version_service,
    list_deployments,
    owned_services,
    rollout_state,
    version_labels,
)
from integrations.kubernetes.proxy_series import SERIES, ServiceRoute
from integrations.routers.interface import Placement, RouterError, VersionHealth
from integrations.routers.proxy_view import ProxyQuery

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig


class KubernetesRouter:
    """The base of the Kubernetes routers: a subclass names its `kind` and implements get_weights
    and set_weights (and set_segment / set_mirror for the shapes its registry entry declares)."""

    kind = "object"
    # Whose series count this router's proxy's answers (proxy_series.py); None: name it in the
    # configuration (`proxy_metrics.series`).
    proxy_series: str | None = None

    def __init__(self, application: Placement):
        assert application.cluster is not None  # the configuration requires it for these routers
        self.application = application
        self.cluster = application.cluster
        self.namespace = application.namespace
        self.attempts = getattr(application.router, "conflict_retries", 5)

    @cached_property
    def kube(self) -> Kube:
        return Kube(self.cluster)

    def object_name(self, svc: ServiceConfig) -> str:
        return svc.route or svc.name

    def what(self, svc: ServiceConfig) -> str:
        return f"{self.kind} {self.namespace}/{self.object_name(svc)}"

    def owned(self, svc: ServiceConfig) -> dict[str, str]:
        try:
            return owned_services(self.kube, self.namespace, svc.name)
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"Services of {svc.name}") from None

    def ensure_services(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, str]:
        """Per-version Services for every version that gets traffic; returns version -> Service name."""
        return {v: ensure_version_service(self.kube, self.namespace, svc, v) for v, w in weights.items() if w > 0}

    def health(self, svc: ServiceConfig, version: str) -> VersionHealth:
        """Ready/available replicas of the version's Deployment against the desired count."""
        try:
            deps = list_deployments(self.kube, self.namespace, version_labels(self.cluster, svc.name, version))
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"Deployments of {svc.name} {version}") from None
        if not deps:
            return VersionHealth(False, f"no Deployment of {svc.name} {version} in namespace {self.namespace}")
        return deployment_health(deps)

    def verify(self, svc: ServiceConfig, wanted: dict[str, int]) -> dict[str, int]:
        actual = self.get_weights(svc)
        live = {v: w for v, w in actual.items() if w > 0}
        if live != {v: w for v, w in wanted.items() if w > 0}:
            raise RouterError(
                f"{self.what(svc)} did not keep the weights Sluice set: wanted {wanted}, read back {actual}; "
                "is another controller rewriting it?",
                retryable=True,
            )
        return {v: actual.get(v, 0) for v in set(actual) | set(wanted)}

    def proxy_query(self, svc: ServiceConfig, versions: list[str]) -> ProxyQuery | None:
        """The proxy's counts of these versions in the metrics backend (no cluster call: a replay
        asks too), or None when the configuration turns them off or names no proxy."""
        settings = getattr(self.application.router, "proxy_metrics", None)
        if settings is None or not settings.enabled:
            return None
        series = settings.series or self.proxy_series
        if series is None:
            return None
        route = ServiceRoute(
            namespace=self.namespace,
            service=svc.name,
            port=svc.port,
            route=self.object_name(svc),
            versions=tuple(versions),
            renamed=dict(settings.labels),
            by_subset=getattr(self.application.router, "destinations", "hosts") == "subsets",
        )
        return SERIES[series](route)

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        raise NotImplementedError

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        raise NotImplementedError


def deployment_health(deps: list[dict[str, Any]]) -> VersionHealth:
    desired = sum(d.get("spec", {}).get("replicas", 1) for d in deps)
    ready = sum((d.get("status") or {}).get("readyReplicas", 0) for d in deps)
    available = sum((d.get("status") or {}).get("availableReplicas", 0) for d in deps)
    states = [rollout_state(d) for d in deps]
    detail = f"{ready}/{desired} ready, {available} available; " + "; ".join(s[1] for s in states)
    if any(s[0] == "failed" for s in states):
        return VersionHealth(False, detail)
    return VersionHealth(desired > 0 and ready >= desired and available >= desired, detail)
