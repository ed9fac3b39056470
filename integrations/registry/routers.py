"""Every router kind: `router.type` -> (configuration model, factory). Adding a router is one line here.

The configuration's `router` union, its JSON Schema, the RBAC rows in deploy/ (API_CALLS) and
`sluice kinds` are all built from ROUTERS. Implementations that import a heavy client (the
Kubernetes routers) are imported only when a router of that kind is built.
"""

from __future__ import annotations

from typing import Any

from integrations.haproxy import router as haproxy
from integrations.kinds import Registry
from integrations.kubernetes import istio, traefik
from integrations.kubernetes.config import (
    CONTOUR_CALLS,
    GATEWAY_API_CALLS,
    INGRESS_NGINX_CALLS,
    ContourRouterConfig,
    GatewayAPIRouterConfig,
    IngressNginxRouterConfig,
)
from integrations.kubernetes.permissions import COMMON_CALLS, SCALE_CALLS
from integrations.kubernetes.shapes import nginx_check_step
from integrations.routers.interface import Placement, Router, RouterError, RouterKind


def _kubernetes(class_name: str) -> Any:
    def build(application: Placement) -> Router:
        from integrations.kubernetes import routers

        return getattr(routers, class_name)(application)

    return build


def _kube(
    config: Any, class_name: str, calls: frozenset[tuple[str, str, str]], description: str, **shapes: Any
) -> RouterKind:
    return RouterKind(config, _kubernetes(class_name), description, needs_cluster=True, permissions=calls, **shapes)


ROUTERS: Registry[RouterKind] = Registry(
    "router",
    [
        haproxy.KIND,
        _kube(
            GatewayAPIRouterConfig,
            "GatewayAPIRouter",
            GATEWAY_API_CALLS,
            "Gateway API HTTPRoute backendRef weights",
            shapes=frozenset({"weights", "segment", "mirror"}),
        ),
        _kube(
            IngressNginxRouterConfig,
            "IngressNginxRouter",
            INGRESS_NGINX_CALLS,
            "ingress-nginx canary Ingress",
            shapes=frozenset({"weights", "segment"}),
            cannot={"mirror": "ingress-nginx's mirror-target copies every request (no share); Sluice does not set it"},
            check_step=nginx_check_step,
        ),
        _kube(
            ContourRouterConfig,
            "ContourRouter",
            CONTOUR_CALLS,
            "Contour HTTPProxy service weights",
            shapes=frozenset({"weights", "segment"}),
            cannot={"mirror": "not yet: Contour's mirror is an entry in the service list Sluice rewrites"},
        ),
        istio.KIND,
        traefik.KIND,
    ],
)


# Every Kubernetes API call Sluice makes: the RBAC rules in deploy/ are exactly these. SCALE_CALLS
# serve every Kubernetes router (a service's `scale:`), so they are not any one kind's.
API_CALLS: frozenset[tuple[str, str, str]] = (COMMON_CALLS | SCALE_CALLS).union(
    *(ROUTERS[name].permissions for name in ROUTERS)
)


def router_for(application: Placement) -> Router:
    """The router of an application, built by its kind's factory."""
    try:
        kind = ROUTERS[application.router.type]
    except KeyError as exc:
        raise RouterError(str(exc.args[0]), retryable=False) from None
    return kind.factory(application)
