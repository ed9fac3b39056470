"""The weighted list of Services that Gateway API and Contour share: a custom object whose rules
each hold a list of backends with weights (an HTTPRoute's `spec.rules[].backendRefs[]`, an HTTPProxy's
`spec.routes[].services[]`). In every rule that sends traffic to the service, the service's backends
are replaced by one per version (Sluice's per-version Services) with the release's percents as
weights; others' backends, and every other field of ours (filters), are kept.

Writes are JSON merge patches of the whole rule list (merge-patch replaces lists) carrying the
resourceVersion read; a 409 means re-read, re-apply, retry (objects.read_modify_write). Every change
is read back and compared with what was asked.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.cluster import api_error
from integrations.kubernetes.objects import (
    read_modify_write,
    service_exists,
    version_service_name,
    version_service_prefix,
)
from integrations.kubernetes.router_base import KubernetesRouter
from integrations.kubernetes.shapes import Shaper, recorded
from integrations.routers.interface import RouterError, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig


def is_ours(ref: dict[str, Any], svc: ServiceConfig, names: dict[str, str]) -> bool:
    """A backend of this service: one of Sluice's per-version Services or the service's own Service."""
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
        return False
    return ref.get("name") in names or ref.get("name") == svc.name


def backend_weights(refs: list[dict[str, Any]], svc: ServiceConfig, names: dict[str, str]) -> dict[str, int]:
    """version -> weight of one rule's backends (a ref without weight counts 1, as Gateway API says)."""
    out: dict[str, int] = {}
    for ref in refs:
        if is_ours(ref, svc, names) and ref.get("name") in names:
            version = names[ref["name"]]
            out[version] = out.get(version, 0) + int(ref.get("weight", 1))
    return out


def rewrite_backends(
    refs: list[dict[str, Any]],
    svc: ServiceConfig,
    names: dict[str, str],
    target: dict[str, int],
    service_of: dict[str, str],
) -> list[dict[str, Any]] | None:
    """The rule's backends with this service's replaced by one per version at the target weights.
    Others' backends (and every other field of ours, e.g. filters) are kept. None: not our rule."""
    positions = [i for i, r in enumerate(refs) if is_ours(r, svc, names)]
    if not positions:
        return None
    template = {k: v for k, v in refs[positions[0]].items() if k not in ("name", "weight")}
    template.setdefault("port", svc.port)
    existing: dict[str, dict[str, Any]] = {}
    for i in positions:
        version = names.get(refs[i].get("name", ""))
        if version is not None and version not in existing:
            existing[version] = refs[i]
    versions = list(existing) + [v for v, w in target.items() if w > 0 and v not in existing]
    ours = []
    for version in versions:
        ref = copy.deepcopy(existing.get(version) or {**template, "name": service_of[version]})
        ref["weight"] = target.get(version, 0)
        ours.append(ref)
    before = [r for i, r in enumerate(refs) if i < positions[0] and i not in positions]
    after = [r for i, r in enumerate(refs) if i > positions[0] and i not in positions]
    return before + ours + after


class WeightedListRouter(KubernetesRouter):
    """HTTPRoute and HTTPProxy: a custom object whose rules each hold a weighted list of Services."""

    group = version = plural = rules_key = refs_key = ""

    def read(self, svc: ServiceConfig) -> dict[str, Any]:
        return self.kube.custom_call(
            self.kube.custom.get_namespaced_custom_object,
            self.group,
            self.version,
            self.namespace,
            self.plural,
            self.object_name(svc),
        )

    def write(self, svc: ServiceConfig, patch: dict[str, Any]) -> None:
        # CustomObjectsApi sends a dict body as application/merge-patch+json.
        self.kube.custom_call(
            self.kube.custom.patch_namespaced_custom_object,
            self.group,
            self.version,
            self.namespace,
            self.plural,
            self.object_name(svc),
            patch,
        )

    def _read_checked(self, svc: ServiceConfig) -> dict[str, Any]:
        try:
            return self.read(svc)
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading {self.what(svc)}") from None

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        obj = self._read_checked(svc)
        names = self.owned(svc)
        segment_rules = self.shaper(svc, names, recorded(obj).get("backend", "")).segment_rules(obj)
        for rule in obj.get("spec", {}).get(self.rules_key) or []:
            if rule in segment_rules:
                continue
            weights = backend_weights(rule.get(self.refs_key) or [], svc, names)
            if weights:
                return to_percents(weights)
        return {}

    def deleted_backends(self, refs: list[dict[str, Any]], svc: ServiceConfig, names: dict[str, str]) -> set[str]:
        """Refs named like Sluice's per-version Services whose Service is gone: it went with its
        Deployment (ownerReference), and its label with it, so `owned` no longer knows it."""
        prefix = version_service_prefix(svc.name)
        suspects = {
            str(r["name"])
            for r in refs
            if r.get("kind", "Service") == "Service"
            and r.get("group", "") in ("", "core")
            and str(r.get("name", "")).startswith(prefix)
            and r["name"] not in names
        }
        return {n for n in suspects if not service_exists(self.kube, self.namespace, n)}

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        check_percents(weights)
        service_of = self.ensure_services(svc, weights)
        names = self.owned(svc)
        names.update({n: v for v, n in service_of.items()})

        def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
            rules = copy.deepcopy(obj.get("spec", {}).get(self.rules_key) or [])
            segment_rules = self.shaper(svc, names, recorded(obj).get("backend", "")).segment_rules(obj)
            found = False
            for rule in rules:
                if rule in segment_rules:  # a segment's rule sends it all to the candidate, whatever the weights
                    continue
                refs = rule.get(self.refs_key) or []
                # A deleted version's backend is ours to drop: left in place, it keeps its share of
                # traffic on a Service that no longer exists (and a rollback would not clear it).
                ours = any(is_ours(r, svc, names) for r in refs)
                gone = self.deleted_backends(refs, svc, names) if ours else set()
                known = {**names, **{n: f"deleted:{n}" for n in gone}}
                present = backend_weights(refs, svc, known)
                target = {v: weights.get(v, 0) for v in list(present) + list(weights)}
                new = rewrite_backends(refs, svc, known, target, service_of)
                if new is not None:
                    found = True
                    rule[self.refs_key] = [r for r in new if r.get("name") not in gone]
            if not found:
                raise RouterError(
                    f"{self.what(svc)} sends no traffic to service {svc.name!r}: give one of its "
                    f"{self.rules_key} a backend (the Service {svc.name!r}) for Sluice to split",
                    retryable=False,
                )
            if rules == obj.get("spec", {}).get(self.rules_key):
                return None
            return {"spec": {self.rules_key: rules}}

        read_modify_write(lambda: self.read(svc), mutate, lambda p: self.write(svc, p), self.what(svc), self.attempts)
        return self.verify(svc, weights)

    # --- segments and mirrors (integrations/kubernetes/shapes.py) -----------------------------------

    def shaper(self, svc: ServiceConfig, names: dict[str, str], candidate: str) -> Shaper:
        raise NotImplementedError

    def set_segment(self, svc: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        self._reshape(svc, version, segment=segment, mirror=None, keep_mirror=True)

    def set_mirror(self, svc: ServiceConfig, version: str, mirror: MirrorConfig | None) -> None:
        self._reshape(svc, version, segment=None, mirror=mirror, keep_segment=True)

    def _reshape(
        self,
        svc: ServiceConfig,
        version: str,
        segment: SegmentConfig | None,
        mirror: MirrorConfig | None,
        keep_segment: bool = False,
        keep_mirror: bool = False,
    ) -> None:
        wanted = segment is not None or mirror is not None
        # Removing needs no Service; adding one needs the candidate's (created when missing).
        candidate = (
            self.ensure_services(svc, {version: 1})[version] if wanted else version_service_name(svc.name, version)
        )
        names = self.owned(svc)
        names[candidate] = version
        shaper = self.shaper(svc, names, candidate)
        read_modify_write(
            lambda: self.read(svc),
            lambda obj: shaper.reshape(obj, version, segment, mirror, keep_segment, keep_mirror),
            lambda p: self.write(svc, p),
            self.what(svc),
            self.attempts,
        )
        obj = self._read_checked(svc)
        state = recorded(obj)
        want_segment = bool(state.get("match")) if keep_segment else segment is not None
        want_mirror = bool(state.get("mirror")) if keep_mirror else mirror is not None
        if not shaper.holds(obj, segment=want_segment, mirror=want_mirror):
            raise RouterError(
                f"{self.what(svc)} did not keep the segment/mirror Sluice set (read back {state or 'none'}); "
                "is another controller rewriting it?",
                retryable=True,
            )
