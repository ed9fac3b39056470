"""Every router kind: `router.type` -> (configuration model, factory). Adding a router is one line here.

The configuration's `router` union, its JSON Schema, the RBAC rows in deploy/ (API_CALLS) and
`sluice kinds` are all built from ROUTERS. Each router's module holds its model, its API calls, its
class and its entry (`KIND`); none of them imports the kubernetes client at the top
(integrations/kubernetes/cluster.py loads it when a router first talks to a cluster).
"""

from __future__ import annotations

from integrations.haproxy import router as haproxy
from integrations.kinds import Registry
from integrations.kubernetes import contour, gateway_api, ingress_nginx, istio, traefik
from integrations.kubernetes.permissions import COMMON_CALLS, SCALE_CALLS
from integrations.routers.interface import Placement, Router, RouterError, RouterKind

ROUTERS: Registry[RouterKind] = Registry(
    "router",
    [
        haproxy.KIND,
        gateway_api.KIND,
        ingress_nginx.KIND,
        contour.KIND,
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
