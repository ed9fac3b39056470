"""The Istio router's arithmetic on a VirtualService's routes, with no I/O: which destination is which
version (by host, Sluice's per-version Services; or by subset of the service's DestinationRule), a
rule's weights, and a rule's route rewritten to new weights.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from typing import Any

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


def by_host(namespace: str, service: str, names: dict[str, str], gone: set[str] | None = None) -> VersionOf:
    """Destinations named by host: Sluice's per-version Services (`names`: Service -> version), those
    in `gone` (deleted per-version Services, "deleted:<name>"), or the service's own host ("")."""

    def version_of(dest: dict[str, Any]) -> str | None:
        name = host_service(str(dest.get("host", "")), namespace)
        if name in names:
            return names[name]
        if gone and name in gone:
            return f"deleted:{name}"
        if name == service and not dest.get("subset"):
            return ""
        return None

    return version_of


def by_subset(namespace: str, service: str, versions: dict[str, str]) -> VersionOf:
    """Destinations named by subset of the service's host (`versions`: subset -> version); the host
    without a subset is the service itself ("")."""

    def version_of(dest: dict[str, Any]) -> str | None:
        if host_service(str(dest.get("host", "")), namespace) != service:
            return None
        subset = dest.get("subset")
        if not subset:
            return ""
        return versions.get(subset)  # a subset selecting no single version is someone else's

    return version_of
