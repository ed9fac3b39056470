"""The Kubernetes integration's configuration: the cluster, and the three Kubernetes routers.

The router models live here, not in routers.py, so that loading a configuration does not
import the kubernetes client (the registry builds a router only when one is used). Each
router declares the API calls it makes: they are RBAC rows in deploy/ (see permissions.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.config.base import Duration, Strict


class ClusterConfig(Strict):
    """Which Kubernetes cluster an application runs in: in-cluster (Sluice's own service account)
    or a kubeconfig context. With `in_cluster: true` the in-cluster configuration is tried first
    and the kubeconfig is the fallback (so the same file works on a laptop)."""

    in_cluster: bool = False
    context: str | None = Field(None, max_length=253, description="kubeconfig context (default: current).")
    kubeconfig: str | None = Field(None, description="kubeconfig path (default: $KUBECONFIG or ~/.kube/config).")
    service_label: str = Field(
        "app",
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
        description="Label naming the service on Deployments, e.g. circleci.com/component-name.",
    )
    version_label: str = Field(
        "version",
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
        description="Label naming the version on Deployments, e.g. circleci.com/version.",
    )
    watch: bool = Field(True, description="Start releases when a new version's Deployment becomes available.")
    timeout: Duration = 5.0


class KubernetesRouterConfig(Strict):
    # Conflicts (409) are retried this many times, re-reading and re-applying each time.
    conflict_retries: int = Field(5, ge=1, le=20)


class GatewayAPIRouterConfig(KubernetesRouterConfig):
    """Gateway API: Sluice sets `spec.rules[].backendRefs[].weight` of each service's HTTPRoute."""

    type: Literal["gateway-api"]


class IngressNginxRouterConfig(KubernetesRouterConfig):
    """ingress-nginx: Sluice creates a canary Ingress from the service's Ingress and sets `canary-weight`."""

    type: Literal["ingress-nginx"]


class ContourRouterConfig(KubernetesRouterConfig):
    """Contour: Sluice sets `spec.routes[].services[].weight` of each service's HTTPProxy."""

    type: Literal["contour"]


# The API calls each router makes, besides the per-version Services every one of them manages.
GATEWAY_API_CALLS = frozenset(
    {("gateway.networking.k8s.io", "httproutes", "get"), ("gateway.networking.k8s.io", "httproutes", "patch")}
)
CONTOUR_CALLS = frozenset({("projectcontour.io", "httpproxies", "get"), ("projectcontour.io", "httpproxies", "patch")})
# read the service's Ingress, create and steer the canary Ingress
INGRESS_NGINX_CALLS = frozenset(
    {
        ("networking.k8s.io", "ingresses", "get"),
        ("networking.k8s.io", "ingresses", "create"),
        ("networking.k8s.io", "ingresses", "patch"),
    }
)
