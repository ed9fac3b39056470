"""Contour router: weights on the service's `HTTPProxy` (`projectcontour.io/v1`).

The same as the Gateway API router on `spec.routes[].services[]` (backend_lists.py); segments are
extra routes (shapes.py). The HTTPProxy is named by the service's `route` setting (default: the
service name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from integrations.kubernetes.backend_lists import WeightedListRouter, is_ours
from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.shapes import ContourShaper, Shaper
from integrations.routers.interface import RouterKind

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig


class ContourRouterConfig(KubernetesRouterConfig):
    """Contour: Sluice sets `spec.routes[].services[].weight` of each service's HTTPProxy."""

    type: Literal["contour"]


GROUP, VERSION, PLURAL = "projectcontour.io", "v1", "httpproxies"
CONTOUR_CALLS = frozenset({(GROUP, PLURAL, "get"), (GROUP, PLURAL, "patch")})


class ContourRouter(WeightedListRouter):
    kind = "HTTPProxy"
    proxy_series = "contour"
    group, version, plural = GROUP, VERSION, PLURAL
    rules_key, refs_key = "routes", "services"

    def shaper(self, svc: ServiceConfig, names: dict[str, str], candidate: str) -> Shaper:
        return ContourShaper(
            lambda rule: any(is_ours(r, svc, names) for r in rule.get("services") or []),
            {"name": candidate, "port": svc.port},
        )


KIND = RouterKind(
    ContourRouterConfig,
    ContourRouter,
    "Contour HTTPProxy service weights",
    needs_cluster=True,
    permissions=CONTOUR_CALLS,
    shapes=frozenset({"weights", "segment"}),
    cannot={"mirror": "not yet: Contour's mirror is an entry in the service list Sluice rewrites"},
)
