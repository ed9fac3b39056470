"""Traefik router: weights in the service's `TraefikService` (`traefik.io/v1alpha1`).

The TraefikService (named by the service's `route` setting, default the service name) holds a
weighted round robin, `spec.weighted.services[]: {name, kind: Service, namespace, port, weight}`;
the IngressRoute sends the service's traffic to it (`kind: TraefikService`). Sluice replaces the
entries of the service (its own Service, or Sluice's per-version Services `web-1-2-0`, owned by
their Deployments) by one per version, weighted in percent, where the first of them was. Other
entries (another Service, a nested TraefikService, another namespace's), the keys of an entry that
Sluice does not set (`responseForwarding`, `serversTransport`, ...) and the rest of the object
(`weighted.sticky`, annotations) are kept.

Writes are JSON merge patches of `spec.weighted.services` (a list, so replaced whole): read, changed
and sent back with the resourceVersion read; a 409 means re-read, re-apply, retry. Every change is
read back and compared with what was asked.

The registry imports this module with every configuration: nothing here imports the kubernetes
client at the top (integrations/kubernetes/cluster.py loads it when the router first talks to a cluster).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from integrations.kubernetes.cluster import api_error, status_of
from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.objects import read_modify_write, service_exists, version_service_prefix
from integrations.kubernetes.router_base import KubernetesRouter
from integrations.routers.interface import RouterError, RouterKind, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig


class TraefikRouterConfig(KubernetesRouterConfig):
    """Traefik: Sluice sets `spec.weighted.services[].weight` of each service's TraefikService."""

    type: Literal["traefik"]


GROUP, VERSION, PLURAL = "traefik.io", "v1alpha1", "traefikservices"
TRAEFIK_CALLS = frozenset({(GROUP, PLURAL, "get"), (GROUP, PLURAL, "patch")})

# What an entry is to this service: a version, "" (the service itself, not yet split), None (not ours).
VersionOf = Callable[[dict[str, Any]], str | None]


def entry_weights(entries: list[dict[str, Any]], version_of: VersionOf) -> dict[str, int]:
    """version -> weight (an entry without weight counts 1, Traefik's default)."""
    out: dict[str, int] = {}
    for entry in entries:
        version = version_of(entry)
        if version:
            out[version] = out.get(version, 0) + int(entry.get("weight", 1))
    return out


def rewrite_entries(
    entries: list[dict[str, Any]],
    version_of: VersionOf,
    target: dict[str, int],
    new_entry: Callable[[dict[str, Any], str], dict[str, Any]],
    drop: set[str],
) -> list[dict[str, Any]] | None:
    """The entries with this service's replaced by one per version at the target weights, where the
    first of them was. A version's existing entry keeps its other keys; a new one copies the first
    entry's (`new_entry(template, version)`). Versions in `drop` go. None: no entry is ours."""
    positions = [i for i, e in enumerate(entries) if version_of(e) is not None]
    if not positions:
        return None
    template = {k: v for k, v in entries[positions[0]].items() if k not in ("name", "weight")}
    existing: dict[str, dict[str, Any]] = {}
    for i in positions:
        version = version_of(entries[i])
        if version and version not in existing and version not in drop:
            existing[version] = entries[i]
    versions = list(existing) + [v for v, w in target.items() if w > 0 and v not in existing]
    ours = []
    for version in versions:
        entry = copy.deepcopy(existing.get(version) or new_entry(template, version))
        entry["weight"] = target.get(version, 0)
        ours.append(entry)
    before = [e for i, e in enumerate(entries) if i < positions[0] and i not in positions]
    after = [e for i, e in enumerate(entries) if i > positions[0] and i not in positions]
    return before + ours + after


class TraefikRouter(KubernetesRouter):
    kind = "TraefikService"
    proxy_series = "traefik"

    def _get(self, svc: ServiceConfig) -> dict[str, Any]:
        return self.kube.custom_call(
            self.kube.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.object_name(svc),
        )

    def read(self, svc: ServiceConfig) -> dict[str, Any]:
        """The TraefikService, or a RouterError that says what is missing and how to fix it."""
        try:
            obj = self._get(svc)
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) == 404:
                raise RouterError(
                    f"{self.what(svc)} not found: Sluice splits {svc.name}'s traffic in the TraefikService "
                    f"named by the service's `route` (default: its name); create it with "
                    f"spec.weighted.services: [{{name: {svc.name}, port: {svc.port}}}] and send the "
                    "IngressRoute's traffic to it (kind: TraefikService), or set `route`",
                    retryable=False,
                ) from None
            raise api_error(exc, f"reading {self.what(svc)}") from None
        if not isinstance(obj.get("spec", {}).get("weighted"), dict):
            kinds = ", ".join(sorted(obj.get("spec") or {})) or "nothing"
            raise RouterError(
                f"{self.what(svc)} is not a weighted round robin (its spec has {kinds}): Sluice sets "
                "spec.weighted.services[].weight; make it `weighted`, or point `route` at one that is",
                retryable=False,
            )
        return obj

    def write(self, svc: ServiceConfig, patch: dict[str, Any]) -> None:
        # CustomObjectsApi sends a dict body as application/merge-patch+json.
        self.kube.custom_call(
            self.kube.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.object_name(svc),
            patch,
        )

    def local_service(self, entry: dict[str, Any]) -> bool:
        """A Kubernetes Service of this namespace (not a TraefikService, not another namespace's)."""
        return entry.get("kind", "Service") == "Service" and entry.get("namespace", self.namespace) == self.namespace

    def by_name(self, svc: ServiceConfig, names: dict[str, str], gone: set[str] | None = None) -> VersionOf:
        def version_of(entry: dict[str, Any]) -> str | None:
            if not self.local_service(entry):
                return None
            name = str(entry.get("name", ""))
            if name in names:
                return names[name]
            if gone and name in gone:
                return f"deleted:{name}"
            return "" if name == svc.name else None

        return version_of

    def deleted_entries(self, svc: ServiceConfig, entries: list[dict[str, Any]], names: dict[str, str]) -> set[str]:
        """Entries named like Sluice's per-version Services whose Service is gone (with its Deployment,
        by its ownerReference, taking its label along, so `owned` no longer knows it)."""
        prefix = version_service_prefix(svc.name)
        suspects = {
            str(e["name"])
            for e in entries
            if self.local_service(e) and str(e.get("name", "")).startswith(prefix) and e["name"] not in names
        }
        return {n for n in suspects if not service_exists(self.kube, self.namespace, n)}

    @staticmethod
    def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
        return list(obj.get("spec", {}).get("weighted", {}).get("services") or [])

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        obj = self.read(svc)
        return to_percents(entry_weights(self.entries(obj), self.by_name(svc, self.owned(svc))))

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        check_percents(weights)
        service_of = self.ensure_services(svc, weights)
        names = {**self.owned(svc), **{n: v for v, n in service_of.items()}}

        def new_entry(template: dict[str, Any], version: str) -> dict[str, Any]:
            # the per-version Service's one port (the template's may be the service's own, or named)
            return {**template, "name": service_of[version], "port": svc.port}

        def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
            entries = self.entries(obj)
            # A deleted version's entry is ours to drop: left in place, it keeps its share of
            # traffic on a Service that no longer exists (and a rollback would not clear it).
            ours = any(self.by_name(svc, names)(e) is not None for e in entries)
            gone = self.deleted_entries(svc, entries, names) if ours else set()
            version_of = self.by_name(svc, names, gone)
            drop = {f"deleted:{n}" for n in gone}
            present = entry_weights(entries, version_of)
            target = {v: weights.get(v, 0) for v in list(present) + list(weights) if v not in drop}
            new = rewrite_entries(entries, version_of, target, new_entry, drop)
            if new is None:
                raise RouterError(
                    f"{self.what(svc)} sends no traffic to service {svc.name!r}: give its "
                    f"spec.weighted.services an entry {{name: {svc.name}, port: {svc.port}}} for Sluice to split",
                    retryable=False,
                )
            if new == entries:
                return None
            return {"spec": {"weighted": {"services": new}}}

        first = [self.read(svc)]  # checked: a missing or unweighted TraefikService is a clear error

        def read() -> dict[str, Any]:
            return first.pop() if first else self._get(svc)

        read_modify_write(read, mutate, lambda p: self.write(svc, p), self.what(svc), self.attempts)
        return self.verify(svc, weights)


KIND = RouterKind(
    TraefikRouterConfig,
    TraefikRouter,
    "Traefik TraefikService weighted services",
    needs_cluster=True,
    permissions=TRAEFIK_CALLS,
    cannot={
        "segment": "a TraefikService has no request matching (it lives in the IngressRoute's `match`, "
        "which Sluice does not own)",
        "mirror": "not yet: Traefik mirrors with a `mirroring` TraefikService, which would replace the "
        "`weighted` one Sluice steers",
    },
)
