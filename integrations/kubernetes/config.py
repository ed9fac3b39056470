"""The Kubernetes integration's configuration: the cluster, and the base of every Kubernetes router's
model. Each router's own model, and the API calls it makes (RBAC rows in deploy/, see
permissions.py), are in its module (gateway_api.py, ingress_nginx.py, contour.py, istio.py, traefik.py).
"""

from __future__ import annotations

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
