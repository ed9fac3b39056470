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
  whatever its name. Sluice adds a missing one, named after the version as a DNS-1123 label (Istio
  refuses `1.2.0`: `1-2-0`) with `labels: {<version_label>: v}`, and never removes subsets. It does
  not create the DestinationRule: a new DestinationRule for the host would replace the mesh's or
  namespace's traffic policy for it (mTLS mode, for one), which is the owner's choice to make.

Writes are JSON merge patches, which replace lists whole: `spec.http` (or `spec.subsets`) is
read, changed and sent back with the resourceVersion read, and a 409 means re-read, re-apply,
retry. Every change is read back and compared with what was asked.

The configuration model and the API calls are at the top and import nothing heavy (the registry
loads them with every configuration); the router itself, which needs the kubernetes client, is
built on first use by `build`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.shapes import IstioShaper, recorded
from integrations.routers.interface import RouterError, RouterKind, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig
    from integrations.kubernetes.routers import KubernetesRouter
    from integrations.routers.interface import Placement, Router


class IstioRouterConfig(KubernetesRouterConfig):
    """Istio: Sluice sets `spec.http[].route[].weight` of each service's VirtualService."""

    type: Literal["istio"]
    destinations: Literal["hosts", "subsets"] = Field(
        "hosts",
        description="How a version's destination is named: `hosts`, Sluice's per-version Services "
        "(`web-1-2-0`); `subsets`, subsets of the service's DestinationRule (Sluice adds missing ones).",
    )


GROUP, VERSION = "networking.istio.io", "v1"
ISTIO_CALLS = frozenset(
    {
        (GROUP, "virtualservices", "get"),
        (GROUP, "virtualservices", "patch"),
        # destinations: subsets - read the service's DestinationRule, add a version's missing subset
        (GROUP, "destinationrules", "get"),
        (GROUP, "destinationrules", "patch"),
    }
)

# What a destination is to this service: a version, "" (the service itself, not yet split), None (not ours).
VersionOf = Callable[[dict[str, Any]], str | None]


def host_service(host: str, namespace: str) -> str | None:
    """The Service of this namespace a destination host names (`web`, `web.prod`, `web.prod.svc`,
    `web.prod.svc.cluster.local` -> `web`); None for another namespace's or a host outside the mesh."""
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0]
    if parts[1] != namespace or (len(parts) > 2 and parts[2] != "svc"):
        return None
    return parts[0]


def with_service(host: str, service: str) -> str:
    """`host` naming `service` instead, in the same form (short or qualified)."""
    return ".".join([service, *host.split(".")[1:]])


def subset_name(version: str, taken: set[str]) -> str:
    """A DNS-1123 label for the version's subset (Istio refuses `1.2.0`): `1-2-0`, hashed when too
    long or when another version already has that name."""
    base = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")[:63].rstrip("-") or "v"
    if base in taken or len(version) > 63:
        digest = hashlib.sha256(version.encode()).hexdigest()[:8]
        base = base[:54].rstrip("-") + "-" + digest
    return base


def subset_versions(
    subsets: list[dict[str, Any]], version_label: str, service_label: str, service: str
) -> dict[str, str]:
    """Subset name -> version, for the subsets whose labels select exactly one version of the service."""
    out = {}
    for subset in subsets:
        labels = subset.get("labels") or {}
        version = labels.get(version_label)
        only_version = set(labels) <= {version_label, service_label} and labels.get(service_label, service) == service
        if subset.get("name") and version and only_version:
            out[str(subset["name"])] = str(version)
    return out


def route_weights(route: list[dict[str, Any]], version_of: VersionOf) -> dict[str, int]:
    """version -> weight in one rule's route (a lone destination without weight takes it all)."""
    out: dict[str, int] = {}
    for entry in route:
        version = version_of(entry.get("destination") or {})
        if version:
            default = 100 if len(route) == 1 else 0
            out[version] = out.get(version, 0) + int(entry.get("weight", default))
    return out


def rewrite_route(
    route: list[dict[str, Any]],
    version_of: VersionOf,
    target: dict[str, int],
    destination: Callable[[dict[str, Any], str], dict[str, Any]],
    drop: set[str],
) -> list[dict[str, Any]] | None:
    """The rule's route with this service's destinations replaced by one per version at the target
    weights, where the first of them was. A version's existing entry keeps its other keys (`headers`);
    a new one copies the first entry's, with `destination(template, version)`. Versions in `drop` go.
    None: the rule does not route to this service."""
    positions = [i for i, e in enumerate(route) if version_of(e.get("destination") or {}) is not None]
    if not positions:
        return None
    template = {k: v for k, v in route[positions[0]].items() if k != "weight"}
    existing: dict[str, dict[str, Any]] = {}
    for i in positions:
        version = version_of(route[i].get("destination") or {})
        if version and version not in existing and version not in drop:
            existing[version] = route[i]
    versions = list(existing) + [v for v, w in target.items() if w > 0 and v not in existing]
    ours = []
    for version in versions:
        new = existing.get(version) or {**template, "destination": destination(template["destination"], version)}
        entry = copy.deepcopy(new)
        entry["weight"] = target.get(version, 0)
        ours.append(entry)
    before = [e for i, e in enumerate(route) if i < positions[0] and i not in positions]
    after = [e for i, e in enumerate(route) if i > positions[0] and i not in positions]
    return before + ours + after


def build(application: Placement) -> Router:
    """The registry's factory: the router class (and the kubernetes client) load on first use."""
    return _router_class()(application)


@cache
def _router_class() -> type[KubernetesRouter]:
    from kubernetes.client.rest import ApiException

    from integrations.kubernetes.cluster import api_error, label_selector
    from integrations.kubernetes.objects import (
        list_deployments,
        read_modify_write,
        service_exists,
        version_labels,
        version_service_prefix,
    )
    from integrations.kubernetes.routers import KubernetesRouter

    class IstioRouter(KubernetesRouter):
        kind = "VirtualService"

        def __init__(self, application: Placement):
            super().__init__(application)
            self.subsets = application.router.destinations == "subsets"

        # --- reading and writing the two objects -------------------------------------------------------

        def _get(self, plural: str, name: str) -> dict[str, Any]:
            return self.kube.custom_call(
                self.kube.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name
            )

        def _checked(self, plural: str, name: str, what: str, fix: str) -> dict[str, Any]:
            """The object, or a RouterError that says what is missing and how to fix it."""
            try:
                return self._get(plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    raise RouterError(f"{what} not found: {fix}", retryable=False) from None
                raise api_error(exc, f"reading {what}") from None
            except Exception as exc:  # noqa: BLE001
                raise api_error(exc, f"reading {what}") from None

        @staticmethod
        def _first_then(first: dict[str, Any], again: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
            """A read for read_modify_write: the (checked) object already read, then fresh reads on a conflict."""
            pending = [first]
            return lambda: pending.pop() if pending else again()

        def _patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
            # CustomObjectsApi sends a dict body as application/merge-patch+json.
            self.kube.custom_call(
                self.kube.custom.patch_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name, patch
            )

        def read(self, svc: ServiceConfig) -> dict[str, Any]:
            fix = (
                f"Sluice splits {svc.name}'s traffic in the VirtualService named by the service's `route` "
                f"(default: its name); create it with an http route to host {svc.name!r}, or set `route`"
            )
            return self._checked("virtualservices", self.object_name(svc), self.what(svc), fix)

        def rule_name(self, svc: ServiceConfig) -> str:
            return svc.name

        def rule_what(self, svc: ServiceConfig) -> str:
            return f"DestinationRule {self.namespace}/{self.rule_name(svc)}"

        def read_rule(self, svc: ServiceConfig) -> dict[str, Any]:
            fix = (
                f"with `destinations: subsets` Sluice adds a subset per version to the DestinationRule of "
                f"host {svc.name!r}, named like the service, but does not create it (it would replace the "
                "host's traffic policy, mTLS included); create it, or use `destinations: hosts`"
            )
            rule = self._checked("destinationrules", self.rule_name(svc), self.rule_what(svc), fix)
            host = str(rule.get("spec", {}).get("host", ""))
            if host_service(host, self.namespace) != svc.name:
                raise RouterError(
                    f"{self.rule_what(svc)} is for host {host!r}, not the service {svc.name!r}", retryable=False
                )
            return rule

        def known_subsets(self, svc: ServiceConfig, rule: dict[str, Any]) -> dict[str, str]:
            subsets = rule.get("spec", {}).get("subsets") or []
            return subset_versions(subsets, self.cluster.version_label, self.cluster.service_label, svc.name)

        # --- which destination is which version ----------------------------------------------------------

        def by_host(self, svc: ServiceConfig, names: dict[str, str], gone: set[str] | None = None) -> VersionOf:
            def version_of(dest: dict[str, Any]) -> str | None:
                name = host_service(str(dest.get("host", "")), self.namespace)
                if name in names:
                    return names[name]
                if gone and name in gone:
                    return f"deleted:{name}"
                if name == svc.name and not dest.get("subset"):
                    return ""
                return None

            return version_of

        def by_subset(self, svc: ServiceConfig, versions: dict[str, str]) -> VersionOf:
            def version_of(dest: dict[str, Any]) -> str | None:
                if host_service(str(dest.get("host", "")), self.namespace) != svc.name:
                    return None
                subset = dest.get("subset")
                if not subset:
                    return ""
                return versions.get(subset)  # a subset selecting no single version is someone else's

            return version_of

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
                return self.by_subset(svc, self.known_subsets(svc, self.read_rule(svc)))
            return self.by_host(svc, self.owned(svc))

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

        def ensure_deployments(self, svc: ServiceConfig, versions: list[str]) -> None:
            """A subset of a version without pods would take its share of traffic and answer 503."""
            for version in versions:
                labels = version_labels(self.cluster, svc.name, version)
                try:
                    found = list_deployments(self.kube, self.namespace, labels)
                except Exception as exc:  # noqa: BLE001
                    raise api_error(exc, f"Deployments of {svc.name} {version}") from None
                if not found:
                    raise RouterError(
                        f"no Deployment labelled {label_selector(labels)} in namespace {self.namespace}",
                        retryable=False,
                    )

        def ensure_subsets(self, svc: ServiceConfig, versions: list[str]) -> dict[str, str]:
            """Every subset of the DestinationRule that is a version's: subset name -> version, after adding
            the missing ones for `versions` (others' subsets and fields kept)."""
            known: dict[str, str] = {}

            def mutate(rule: dict[str, Any]) -> dict[str, Any] | None:
                subsets = copy.deepcopy(rule.get("spec", {}).get("subsets") or [])
                known.clear()
                known.update(self.known_subsets(svc, rule))
                taken = {str(s.get("name")) for s in subsets}
                for version in versions:
                    if version not in known.values():
                        name = subset_name(version, taken)
                        subsets.append({"name": name, "labels": {self.cluster.version_label: version}})
                        taken.add(name)
                        known[name] = version
                if subsets == (rule.get("spec", {}).get("subsets") or []):
                    return None
                return {"spec": {"subsets": subsets}}

            name = self.rule_name(svc)
            read_modify_write(
                self._first_then(self.read_rule(svc), lambda: self._get("destinationrules", name)),
                mutate,
                lambda p: self._patch("destinationrules", name, p),
                self.rule_what(svc),
                self.attempts,
            )
            return known

        def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
            check_percents(weights)
            live = [v for v, w in weights.items() if w > 0]
            if self.subsets:
                self.ensure_deployments(svc, live)
                subset_of = {v: n for n, v in self.ensure_subsets(svc, live).items()}
                versions = {n: v for v, n in subset_of.items()}

                def destination(template: dict[str, Any], version: str) -> dict[str, Any]:
                    return {**template, "subset": subset_of[version]}

                def matcher(route: list[dict[str, Any]]) -> tuple[VersionOf, set[str]]:
                    return self.by_subset(svc, versions), set()
            else:
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
                    plain = self.by_host(svc, names)
                    ours = any(plain(e.get("destination") or {}) is not None for e in route)
                    gone = self.deleted_hosts(svc, route, names) if ours else set()
                    return self.by_host(svc, names, gone), {f"deleted:{n}" for n in gone}

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

            name = self.object_name(svc)
            read_modify_write(
                self._first_then(self.read(svc), lambda: self._get("virtualservices", name)),
                mutate,
                lambda p: self._patch("virtualservices", name, p),
                self.what(svc),
                self.attempts,
            )
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
                known = self.ensure_subsets(svc, [version]) if create else self.known_subsets(svc, self.read_rule(svc))
                subset = next((n for n, v in known.items() if v == version), subset_name(version, set()))
                return {"host": with_service(host, svc.name), "subset": subset}
            from integrations.kubernetes.objects import ensure_version_service, version_service_name

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
            name = self.object_name(svc)
            read_modify_write(
                self._first_then(vs, lambda: self._get("virtualservices", name)),
                lambda obj: shaper.reshape(obj, version, segment, mirror, keep_segment, keep_mirror),
                lambda p: self._patch("virtualservices", name, p),
                self.what(svc),
                self.attempts,
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

    return IstioRouter


KIND = RouterKind(
    IstioRouterConfig,
    build,
    "Istio VirtualService route weights",
    needs_cluster=True,
    permissions=ISTIO_CALLS,
    shapes=frozenset({"weights", "segment", "mirror"}),
)
