"""Gateway API router: weights on the service's `HTTPRoute` (`gateway.networking.k8s.io/v1`).

In every rule that sends traffic to the service, its backendRefs are replaced by one per version
(Sluice's per-version Services) with the release's percents as weights (backend_lists.py); segments
and mirrors are extra rules and RequestMirror filters (shapes.py). The HTTPRoute is named by the
service's `route` setting (default: the service name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from integrations.kubernetes.backend_lists import WeightedListRouter, is_ours
from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.shapes import GatewayShaper, Shaper
from integrations.routers.interface import RouterKind

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig


class GatewayAPIRouterConfig(KubernetesRouterConfig):
    """Gateway API: Sluice sets `spec.rules[].backendRefs[].weight` of each service's HTTPRoute."""

    type: Literal["gateway-api"]


GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
GATEWAY_API_CALLS = frozenset({(GROUP, PLURAL, "get"), (GROUP, PLURAL, "patch")})


class GatewayAPIRouter(WeightedListRouter):
    kind = "HTTPRoute"
    group, version, plural = GROUP, VERSION, PLURAL
    rules_key, refs_key = "rules", "backendRefs"

    def shaper(self, svc: ServiceConfig, names: dict[str, str], candidate: str) -> Shaper:
        return GatewayShaper(
            lambda rule: any(is_ours(r, svc, names) for r in rule.get("backendRefs") or []),
            {"name": candidate, "port": svc.port},
        )


KIND = RouterKind(
    GatewayAPIRouterConfig,
    GatewayAPIRouter,
    "Gateway API HTTPRoute backendRef weights",
    needs_cluster=True,
    permissions=GATEWAY_API_CALLS,
    shapes=frozenset({"weights", "segment", "mirror"}),
)
