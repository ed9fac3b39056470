"""The proxy's view on Kubernetes: the series in which each router's proxy counts the answers it gave
each version, as `ProxyQuery`s (integrations/routers/proxy_view.py) for the metrics backend.

Versions are told apart by Sluice's per-version Services (`web-1-2-0`, objects.version_service_name),
which every Kubernetes router routes to, so each proxy's series carry the version's Service:

- ingress-nginx: `nginx_ingress_controller_requests{namespace, ingress, service, canary, status}`.
  A request the canary Ingress took is counted under the primary Ingress and its `service`, with the
  canary upstream (`<namespace>-<service>-<port>`) in `canary` (empty otherwise). The status is what
  the client got: nginx's own 502/503/504 cannot be told from the application's.
- istio: `istio_requests_total{reporter="source", destination_service_namespace,
  destination_service_name, destination_version, response_code, response_flags}`, from the calling
  proxy (a gateway or a sidecar). `response_flags` other than "-" mark an answer Envoy made up
  (UF connect failure, UH no healthy upstream, UT timeout, UC/UR resets...); response_code 0 is
  no answer at all. With `destinations: subsets` versions are told by `destination_version` (the
  pods' `version` or `app.kubernetes.io/version` label).
- traefik: `traefik_service_requests_total{service="<namespace>-<service>-<port>@<provider>", code}`.
- contour (Envoy): `envoy_cluster_upstream_rq{envoy_cluster_name="<namespace>_<service>_<port>",
  envoy_response_code}` (Contour's per-Service cluster stat name; also Contour as a Gateway API
  implementation). Envoy counts its own 503/504 there too, without saying which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from integrations.kubernetes.objects import version_service_name
from integrations.routers.proxy_view import ProxyQuery, regex_of

# Envoy response flags that say the client went away (or a fault was injected on purpose): not an
# answer the proxy made up for the application.
CLIENT_SIDE_FLAGS = frozenset({"DC", "DI", "FI"})


@dataclass(frozen=True)
class ServiceRoute:
    """What a proxy's series name of one service: where it runs and how its versions are routed."""

    namespace: str
    service: str
    port: int
    route: str  # the router's object (Ingress, VirtualService...) name
    versions: tuple[str, ...]
    renamed: dict[str, str]
    by_subset: bool = False  # Istio `destinations: subsets`

    def services(self) -> dict[str, str]:
        """Per-version Service name -> version."""
        return {version_service_name(self.service, v): v for v in self.versions}


def ingress_nginx(r: ServiceRoute) -> ProxyQuery:
    services = r.services()
    upstreams = {f"{r.namespace}-{name}-{r.port}": v for name, v in services.items()}

    def version_of(labels: dict[str, str]) -> str | None:
        canary = labels.get("canary", "")
        return upstreams.get(canary) if canary else services.get(labels.get("service", ""))

    ingresses = [r.route, r.route + "-sluice-canary"]
    return ProxyQuery(
        "ingress-nginx",
        "nginx_ingress_controller_requests",
        "status",
        matchers=(
            (r.renamed.get("namespace", "namespace"), "=", r.namespace),
            (r.renamed.get("ingress", "ingress"), "=~", regex_of(ingresses)),
        ),
        by=tuple(r.renamed.get(x, x) for x in ("service", "canary", "status")),
        version_of=version_of,
        renamed=r.renamed,
    )


def made_up_by_envoy(labels: dict[str, str]) -> bool:
    """An answer Envoy gave instead of the application: flagged (UF, UH, UT, URX...), and a 5xx or none."""
    flags = {f for f in labels.get("response_flags", "-").replace("-", "").split(",") if f}
    code = labels.get("response_code", "")
    return bool(flags - CLIENT_SIDE_FLAGS) and (code == "0" or code.startswith("5"))


def istio(r: ServiceRoute) -> ProxyQuery:
    services = r.services()

    def version_of(labels: dict[str, str]) -> str | None:
        if r.by_subset:
            version = labels.get("destination_version", "")
            return version if version in r.versions else None
        return services.get(labels.get("destination_service_name", ""))

    names = [r.service] if r.by_subset else list(services)
    labels = ("destination_service_name", "destination_version", "response_code", "response_flags")
    return ProxyQuery(
        "istio",
        "istio_requests_total",
        "response_code",
        matchers=(
            (r.renamed.get("reporter", "reporter"), "=", "source"),
            (r.renamed.get("destination_service_namespace", "destination_service_namespace"), "=", r.namespace),
            (r.renamed.get("destination_service_name", "destination_service_name"), "=~", regex_of(names)),
        ),
        by=tuple(r.renamed.get(x, x) for x in labels),
        version_of=version_of,
        made_by_proxy=made_up_by_envoy,
        renamed=r.renamed,
    )


def traefik(r: ServiceRoute) -> ProxyQuery:
    by_name = {f"{r.namespace}-{name}-{r.port}": v for name, v in r.services().items()}

    def version_of(labels: dict[str, str]) -> str | None:
        return by_name.get(labels.get("service", "").split("@", 1)[0])

    return ProxyQuery(
        "traefik",
        "traefik_service_requests_total",
        "code",
        matchers=((r.renamed.get("service", "service"), "=~", f"({regex_of(list(by_name))})@.+"),),
        by=tuple(r.renamed.get(x, x) for x in ("service", "code")),
        version_of=version_of,
        renamed=r.renamed,
    )


def contour(r: ServiceRoute) -> ProxyQuery:
    by_cluster = {f"{r.namespace}_{name}_{r.port}": v for name, v in r.services().items()}
    return ProxyQuery(
        "Envoy (Contour)",
        "envoy_cluster_upstream_rq",
        "envoy_response_code",
        matchers=((r.renamed.get("envoy_cluster_name", "envoy_cluster_name"), "=~", regex_of(list(by_cluster))),),
        by=tuple(r.renamed.get(x, x) for x in ("envoy_cluster_name", "envoy_response_code")),
        version_of=lambda labels: by_cluster.get(labels.get("envoy_cluster_name", "")),
        renamed=r.renamed,
    )


SERIES: dict[str, Callable[[ServiceRoute], ProxyQuery]] = {
    "ingress-nginx": ingress_nginx,
    "istio": istio,
    "traefik": traefik,
    "contour": contour,
}
