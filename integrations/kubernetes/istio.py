"""Istio router: weights on the service's `VirtualService` (`networking.istio.io/v1`).

In every `spec.http[]` rule that sends traffic to the service, the route destinations of the service
are replaced by one per version, weighted in percent; others' destinations and every other field
(matches, retries, a destination's `headers`, other rules) are kept. The VirtualService is named by
the service's `route` setting (default: the service name). Two ways to name a version's destination
(`destinations`):

- `hosts` (default): the per-version Services Sluice creates for every Kubernetes router
  (`web-1-2-0`, owned by the version's Deployment), as the Gateway API router does. Nothing else
  to set up; the host keeps the form of the one it replaces (`web` -> `web-1-2-0`,
  `web.prod.svc.cluster.local` -> `web-1-2-0.prod.svc.cluster.local`).
- `subsets`: `{host: <the service>, subset: <name>}` with the subsets in the service's
  `DestinationRule` (named like the service). A subset whose labels select exactly one version
  (`{<version_label>: v}`, optionally with `{<service_label>: <service>}`) is that version's,
  whatever its name. Sluice adds a missing one and never removes subsets (istio_objects.py).

Writes are JSON merge patches, which replace lists whole: `spec.http` (or `spec.subsets`) is
read, changed and sent back with the resourceVersion read, and a 409 means re-read, re-apply,
retry. Every change is read back and compared with what was asked. The route arithmetic is in
istio_routes.py, the reads and writes in istio_objects.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.istio_objects import GROUP, IstioObjects, first_then
from integrations.kubernetes.istio_routes import (
    VersionOf,
    by_host,
    by_subset,
    host_service,
    rewrite_route,
    route_weights,
    subset_name,
    with_service,
)
from integrations.kubernetes.objects import (
    ensure_version_service,
    read_modify_write,
    service_exists,
    version_service_name,
    version_service_prefix,
)
from integrations.kubernetes.router_base import KubernetesRouter
from integrations.kubernetes.shapes import IstioShaper, recorded
from integrations.routers.interface import Placement, RouterError, RouterKind, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig


class IstioRouterConfig(KubernetesRouterConfig):
    """Istio: Sluice sets `spec.http[].route[].weight` of each service's VirtualService."""

    type: Literal["istio"]
    destinations: Literal["hosts", "subsets"] = Field(
        "hosts",
        description="How a version's destination is named: `hosts`, Sluice's per-version Services "
        "(`web-1-2-0`); `subsets`, subsets of the service's DestinationRule (Sluice adds missing ones).",
    )


ISTIO_CALLS = frozenset(
    {
        (GROUP, "virtualservices", "get"),
        (GROUP, "virtualservices", "patch"),
        # destinations: subsets - read the service's DestinationRule, add a version's missing subset
        (GROUP, "destinationrules", "get"),
        (GROUP, "destinationrules", "patch"),
    }
)

# How set_weights names a new version's destination, and which destinations are whose in a rule's
# route (with the deleted versions to drop from it).
Destination = Callable[[dict[str, Any], str], dict[str, Any]]
Matcher = Callable[[list[dict[str, Any]]], tuple[VersionOf, set[str]]]


class IstioRouter(KubernetesRouter):
    kind = "VirtualService"
    proxy_series = "istio"

    def __init__(self, application: Placement):
        super().__init__(application)
        self.subsets = application.router.destinations == "subsets"

    @cached_property
    def objects(self) -> IstioObjects:
        return IstioObjects(self)

    def read(self, svc: ServiceConfig) -> dict[str, Any]:
        fix = (
            f"Sluice splits {svc.name}'s traffic in the VirtualService named by the service's `route` "
            f"(default: its name); create it with an http route to host {svc.name!r}, or set `route`"
        )
        return self.objects.checked("virtualservices", self.object_name(svc), self.what(svc), fix)

    def _read_modify_write(self, svc: ServiceConfig, first: dict[str, Any], mutate: Any) -> None:
        name = self.object_name(svc)
        read_modify_write(
            first_then(first, lambda: self.objects.get("virtualservices", name)),
            mutate,
            lambda p: self.objects.patch("virtualservices", name, p),
            self.what(svc),
            self.attempts,
        )

    # --- which destination is which version ----------------------------------------------------------

    def deleted_hosts(self, svc: ServiceConfig, route: list[dict[str, Any]], names: dict[str, str]) -> set[str]:
        """Hosts named like Sluice's per-version Services whose Service is gone (with its Deployment,
        by its ownerReference, taking its label along, so `owned` no longer knows it)."""
        prefix = version_service_prefix(svc.name)
        suspects = set()
        for entry in route:
            name = host_service(str((entry.get("destination") or {}).get("host", "")), self.namespace)
            if name and name.startswith(prefix) and name not in names:
                suspects.add(name)
        return {n for n in suspects if not service_exists(self.kube, self.namespace, n)}

    def version_of(self, svc: ServiceConfig) -> VersionOf:
        if self.subsets:
            known = self.objects.known_subsets(svc, self.objects.read_rule(svc))
            return by_subset(self.namespace, svc.name, known)
        return by_host(self.namespace, svc.name, self.owned(svc))

    # --- the Router interface ------------------------------------------------------------------------

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        vs = self.read(svc)
        version_of = self.version_of(svc)
        segment_rules = self.segment_rules(vs, version_of)
        for rule in vs.get("spec", {}).get("http") or []:
            if rule in segment_rules:
                continue
            weights = route_weights(rule.get("route") or [], version_of)
            if weights:
                return to_percents(weights)
        return {}

    def by_subsets(self, svc: ServiceConfig, live: list[str]) -> tuple[Destination, Matcher]:
        """destinations: subsets - the versions' subsets (added when missing) name their destinations."""
        self.objects.ensure_deployments(svc, live)
        subset_of = {v: n for n, v in self.objects.ensure_subsets(svc, live).items()}
        versions = {n: v for v, n in subset_of.items()}

        def destination(template: dict[str, Any], version: str) -> dict[str, Any]:
            return {**template, "subset": subset_of[version]}

        def matcher(route: list[dict[str, Any]]) -> tuple[VersionOf, set[str]]:
            return by_subset(self.namespace, svc.name, versions), set()

        return destination, matcher

    def by_hosts(self, svc: ServiceConfig, weights: dict[str, int]) -> tuple[Destination, Matcher]:
        """destinations: hosts - the versions' per-version Services (created when missing)."""
        service_of = self.ensure_services(svc, weights)
        names = {**self.owned(svc), **{n: v for v, n in service_of.items()}}

        def destination(template: dict[str, Any], version: str) -> dict[str, Any]:
            dest = {k: v for k, v in template.items() if k != "subset"}
            dest["host"] = with_service(str(template.get("host", svc.name)), service_of[version])
            dest["port"] = {"number": svc.port}  # the per-version Service's one port
            return dest

        def matcher(route: list[dict[str, Any]]) -> tuple[VersionOf, set[str]]:
            # A deleted version's destination is ours to drop: left in place, it keeps its share
            # of traffic on a host that no longer exists (and a rollback would not clear it).
            plain = by_host(self.namespace, svc.name, names)
            ours = any(plain(e.get("destination") or {}) is not None for e in route)
            gone = self.deleted_hosts(svc, route, names) if ours else set()
            return by_host(self.namespace, svc.name, names, gone), {f"deleted:{n}" for n in gone}

        return destination, matcher

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        check_percents(weights)
        live = [v for v, w in weights.items() if w > 0]
        destination, matcher = self.by_subsets(svc, live) if self.subsets else self.by_hosts(svc, weights)

        def mutate(vs: dict[str, Any]) -> dict[str, Any] | None:
            rules = copy.deepcopy(vs.get("spec", {}).get("http") or [])
            segment_rules = self.segment_rules(vs, lambda d: None)
            found = False
            for rule in rules:
                if rule in segment_rules:  # a segment's route sends it all to the candidate
                    continue
                route = rule.get("route") or []
                of, drop = matcher(route)
                present = route_weights(route, of)
                target = {v: weights.get(v, 0) for v in list(present) + list(weights) if v not in drop}
                new = rewrite_route(route, of, target, destination, drop)
                if new is not None:
                    found = True
                    rule["route"] = new
            if not found:
                plain = "" if self.subsets else " and no subset (or set `destinations: subsets`)"
                raise RouterError(
                    f"{self.what(svc)} sends no traffic to service {svc.name!r}: give one of its http "
                    f"routes a destination with host {svc.name!r}{plain} for Sluice to split",
                    retryable=False,
                )
            if rules == (vs.get("spec", {}).get("http") or []):
                return None
            return {"spec": {"http": rules}}

        self._read_modify_write(svc, self.read(svc), mutate)
        return self.verify(svc, weights)

    # --- segments and mirrors (integrations/kubernetes/shapes.py) --------------------------------

    def shaper(self, version_of: VersionOf, candidate: dict[str, Any]) -> IstioShaper:
        def weighted(rule: dict[str, Any]) -> bool:
            return any(version_of(e.get("destination") or {}) is not None for e in rule.get("route") or [])

        return IstioShaper(weighted, candidate)

    def segment_rules(self, vs: dict[str, Any], version_of: VersionOf) -> list[dict[str, Any]]:
        backend = recorded(vs).get("backend")
        if not backend:
            return []
        return self.shaper(version_of, json.loads(backend)).segment_rules(vs)

    def candidate(self, svc: ServiceConfig, vs: dict[str, Any], version: str, create: bool) -> dict[str, Any]:
        """The candidate's destination, in the form the VirtualService names the service."""
        version_of = self.version_of(svc)
        host = next(
            (
                str(e["destination"].get("host", svc.name))
                for r in vs.get("spec", {}).get("http") or []
                for e in r.get("route") or []
                if version_of(e.get("destination") or {}) is not None
            ),
            svc.name,
        )
        if self.subsets:
            objects = self.objects
            known = (
                objects.ensure_subsets(svc, [version]) if create else objects.known_subsets(svc, objects.read_rule(svc))
            )
            subset = next((n for n, v in known.items() if v == version), subset_name(version, set()))
            return {"host": with_service(host, svc.name), "subset": subset}
        name = (
            ensure_version_service(self.kube, self.namespace, svc, version)
            if create
            else version_service_name(svc.name, version)
        )
        return {"host": with_service(host, name), "port": {"number": svc.port}}

    def set_segment(self, svc: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        self._reshape(svc, version, segment, None, keep_mirror=True)

    def set_mirror(self, svc: ServiceConfig, version: str, mirror: MirrorConfig | None) -> None:
        self._reshape(svc, version, None, mirror, keep_segment=True)

    def _reshape(
        self,
        svc: ServiceConfig,
        version: str,
        segment: SegmentConfig | None,
        mirror: MirrorConfig | None,
        keep_segment: bool = False,
        keep_mirror: bool = False,
    ) -> None:
        vs = self.read(svc)
        wanted = segment is not None or mirror is not None
        version_of = self.version_of(svc)
        shaper = self.shaper(version_of, self.candidate(svc, vs, version, create=wanted))
        self._read_modify_write(
            svc, vs, lambda obj: shaper.reshape(obj, version, segment, mirror, keep_segment, keep_mirror)
        )
        after = self.read(svc)
        state = recorded(after)
        want_segment = bool(state.get("match")) if keep_segment else segment is not None
        want_mirror = bool(state.get("mirror")) if keep_mirror else mirror is not None
        if not shaper.holds(after, segment=want_segment, mirror=want_mirror):
            raise RouterError(
                f"{self.what(svc)} did not keep the segment/mirror Sluice set (read back {state or 'none'}); "
                "is another controller rewriting it?",
                retryable=True,
            )


KIND = RouterKind(
    IstioRouterConfig,
    IstioRouter,
    "Istio VirtualService route weights",
    needs_cluster=True,
    permissions=ISTIO_CALLS,
    shapes=frozenset({"weights", "segment", "mirror"}),
)
