"""The Kubernetes integration's configuration: the cluster, and the base of every Kubernetes router's
model. Each router's own model, and the API calls it makes (RBAC rows in deploy/, see
permissions.py), are in its module (gateway_api.py, ingress_nginx.py, contour.py, istio.py, traefik.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from app.core.config.base import Duration, Strict
from integrations.routers.proxy_view import LABEL_NAME_RE


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


class ProxyMetricsConfig(Strict):
    """Where the router's proxy counts its answers in Prometheus (docs/kubernetes.md, "The proxy's view")."""

    enabled: bool = Field(True, description="Count the proxy's answers when Prometheus has them.")
    series: Literal["ingress-nginx", "istio", "traefik", "contour"] | None = Field(
        None,
        description="Whose series to read: default the router's own proxy (a gateway-api router has none: "
        "name its implementation, `contour` or `istio`).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Labels Prometheus stores under another name, e.g. {service: exported_service, "
        "namespace: exported_namespace} when the scrape target carries labels of the same names.",
    )

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [name for pair in labels.items() for name in pair if not LABEL_NAME_RE.match(name)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: not a Prometheus label name (letters, digits and '_', "
                "not starting with a digit), e.g. {service: exported_service}"
            )
        return labels


class KubernetesRouterConfig(Strict):
    # Conflicts (409) are retried this many times, re-reading and re-applying each time.
    conflict_retries: int = Field(5, ge=1, le=20)
    proxy_metrics: ProxyMetricsConfig = Field(default_factory=ProxyMetricsConfig)
