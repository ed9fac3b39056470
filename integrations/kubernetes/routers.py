"""The Kubernetes routers behind Sluice's Router interface.

- Gateway API: the service's `HTTPRoute`; in every rule that sends traffic to the service, the
  backendRefs to it are replaced by one per version (Sluice's per-version Services) with the
  release's percents as weights. Merge-patch of `spec.rules` (the whole list, as merge-patch
  replaces lists) carrying the resourceVersion read.
- Contour: the same on `HTTPProxy` `spec.routes[].services[]`.
- ingress-nginx: the service's Ingress keeps the base version; a canary Ingress that Sluice creates
  from it carries the other version with `canary-weight`. Strategic-merge patches (annotations
  merge, so others' survive; the atomic `rules` list is resent) carrying the resourceVersion.

Every write is retried on 409 after re-reading (objects.read_modify_write), and every change is read
back and compared with what was asked, like the HAProxy router.
"""

from __future__ import annotations

import copy
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kubernetes.client.rest import ApiException

from integrations.kubernetes.cluster import MANAGED_BY, SERVICE_LABEL, VERSION_LABEL, Kube, api_error
from integrations.kubernetes.objects import (
    ensure_version_service,
    list_deployments,
    owned_services,
    read_modify_write,
    rollout_state,
    service_exists,
    version_labels,
    version_service_name,
    version_service_prefix,
)
from integrations.kubernetes.shapes import (
    ContourShaper,
    GatewayShaper,
    Shaper,
    nginx_segment_annotations,
    recorded,
)
from integrations.routers.interface import Placement, RouterError, VersionHealth, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig


class KubernetesRouter:
    """What the three routers share: the cluster, per-version Services, health from the Deployment."""

    kind = "object"

    def __init__(self, application: Placement):
        assert application.cluster is not None  # the configuration requires it for these routers
        self.application = application
        self.cluster = application.cluster
        self.namespace = application.namespace
        self.attempts = getattr(application.router, "conflict_retries", 5)

    @cached_property
    def kube(self) -> Kube:
        return Kube(self.cluster)

    def object_name(self, svc: ServiceConfig) -> str:
        return svc.route or svc.name

    def what(self, svc: ServiceConfig) -> str:
        return f"{self.kind} {self.namespace}/{self.object_name(svc)}"

    def owned(self, svc: ServiceConfig) -> dict[str, str]:
        try:
            return owned_services(self.kube, self.namespace, svc.name)
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"Services of {svc.name}") from None

    def ensure_services(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, str]:
        """Per-version Services for every version that gets traffic; returns version -> Service name."""
        return {v: ensure_version_service(self.kube, self.namespace, svc, v) for v, w in weights.items() if w > 0}

    def health(self, svc: ServiceConfig, version: str) -> VersionHealth:
        """Ready/available replicas of the version's Deployment against the desired count."""
        try:
            deps = list_deployments(self.kube, self.namespace, version_labels(self.cluster, svc.name, version))
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"Deployments of {svc.name} {version}") from None
        if not deps:
            return VersionHealth(False, f"no Deployment of {svc.name} {version} in namespace {self.namespace}")
        return deployment_health(deps)

    def verify(self, svc: ServiceConfig, wanted: dict[str, int]) -> dict[str, int]:
        actual = self.get_weights(svc)
        live = {v: w for v, w in actual.items() if w > 0}
        if live != {v: w for v, w in wanted.items() if w > 0}:
            raise RouterError(
                f"{self.what(svc)} did not keep the weights Sluice set: wanted {wanted}, read back {actual}; "
                "is another controller rewriting it?",
                retryable=True,
            )
        return {v: actual.get(v, 0) for v in set(actual) | set(wanted)}

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        raise NotImplementedError

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        raise NotImplementedError


def deployment_health(deps: list[dict[str, Any]]) -> VersionHealth:
    desired = sum(d.get("spec", {}).get("replicas", 1) for d in deps)
    ready = sum((d.get("status") or {}).get("readyReplicas", 0) for d in deps)
    available = sum((d.get("status") or {}).get("availableReplicas", 0) for d in deps)
    states = [rollout_state(d) for d in deps]
    detail = f"{ready}/{desired} ready, {available} available; " + "; ".join(s[1] for s in states)
    if any(s[0] == "failed" for s in states):
        return VersionHealth(False, detail)
    return VersionHealth(desired > 0 and ready >= desired and available >= desired, detail)


# --- weighted backend lists (Gateway API backendRefs, Contour services) ------------------------------


def _ours(ref: dict[str, Any], svc: ServiceConfig, names: dict[str, str]) -> bool:
    """A backend of this service: one of Sluice's per-version Services or the service's own Service."""
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
        return False
    return ref.get("name") in names or ref.get("name") == svc.name


def backend_weights(refs: list[dict[str, Any]], svc: ServiceConfig, names: dict[str, str]) -> dict[str, int]:
    """version -> weight of one rule's backends (a ref without weight counts 1, as Gateway API says)."""
    out: dict[str, int] = {}
    for ref in refs:
        if _ours(ref, svc, names) and ref.get("name") in names:
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
    positions = [i for i, r in enumerate(refs) if _ours(r, svc, names)]
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


class _WeightedListRouter(KubernetesRouter):
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
                ours = any(_ours(r, svc, names) for r in refs)
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


class GatewayAPIRouter(_WeightedListRouter):
    kind = "HTTPRoute"
    group, version, plural = "gateway.networking.k8s.io", "v1", "httproutes"
    rules_key, refs_key = "rules", "backendRefs"

    def shaper(self, svc: ServiceConfig, names: dict[str, str], candidate: str) -> Shaper:
        return GatewayShaper(
            lambda rule: any(_ours(r, svc, names) for r in rule.get("backendRefs") or []),
            {"name": candidate, "port": svc.port},
        )


class ContourRouter(_WeightedListRouter):
    kind = "HTTPProxy"
    group, version, plural = "projectcontour.io", "v1", "httpproxies"
    rules_key, refs_key = "routes", "services"

    def shaper(self, svc: ServiceConfig, names: dict[str, str], candidate: str) -> Shaper:
        return ContourShaper(
            lambda rule: any(_ours(r, svc, names) for r in rule.get("services") or []),
            {"name": candidate, "port": svc.port},
        )


# --- ingress-nginx ------------------------------------------------------------------------------------

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
STRATEGIC = "application/strategic-merge-patch+json"


class IngressNginxRouter(KubernetesRouter):
    """Two Ingresses for one host/path: the service's own (the base version) and Sluice's canary
    (the other version, `canary-weight` percent). Only two versions can share traffic."""

    kind = "Ingress"

    def canary_name(self, svc: ServiceConfig) -> str:
        return self.object_name(svc) + "-sluice-canary"

    def _read(self, name: str) -> dict[str, Any]:
        return self.kube.raw(self.kube.net.read_namespaced_ingress, name, self.namespace)

    def _read_canary(self, svc: ServiceConfig) -> dict[str, Any] | None:
        try:
            return self._read(self.canary_name(svc))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, f"reading Ingress {self.namespace}/{self.canary_name(svc)}") from None
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading Ingress {self.namespace}/{self.canary_name(svc)}") from None

    def _patch(self, name: str, patch: dict[str, Any]) -> None:
        # A dict body would go out as json-patch by default in this client: ask for strategic merge.
        self.kube.raw(self.kube.net.patch_namespaced_ingress, name, self.namespace, patch, _content_type=STRATEGIC)

    @staticmethod
    def _backends(ing: dict[str, Any]) -> list[dict[str, Any]]:
        """Every `backend.service` of an Ingress (default backend and each path)."""
        spec = ing.get("spec", {})
        out = []
        if (spec.get("defaultBackend") or {}).get("service"):
            out.append(spec["defaultBackend"]["service"])
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                if (path.get("backend") or {}).get("service"):
                    out.append(path["backend"]["service"])
        return out

    def _version_of(self, ing: dict[str, Any], svc: ServiceConfig, names: dict[str, str]) -> str | None:
        for backend in self._backends(ing):
            if backend.get("name") in names:
                return names[backend["name"]]
        return None

    def _retarget(self, ing: dict[str, Any], svc: ServiceConfig, names: dict[str, str], to: str) -> dict[str, Any]:
        """A copy of the Ingress spec with this service's backends pointing at Service `to`."""
        spec = copy.deepcopy(ing.get("spec", {}))
        found = False
        for backend in self._backends({"spec": spec}):
            if backend.get("name") in names or backend.get("name") == svc.name:
                backend["name"] = to
                backend.setdefault("port", {"number": svc.port})
                found = True
        if not found:
            raise RouterError(
                f"Ingress {self.namespace}/{self.object_name(svc)} has no backend for service {svc.name!r}",
                retryable=False,
            )
        return spec

    def get_weights(self, svc: ServiceConfig) -> dict[str, int]:
        names = self.owned(svc)
        try:
            primary = self._read(self.object_name(svc))
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading {self.what(svc)}") from None
        base = self._version_of(primary, svc, names)
        canary = self._read_canary(svc)
        weights: dict[str, int] = {}
        if base is not None:
            weights[base] = 100
        if canary is not None:
            annotations = canary.get("metadata", {}).get("annotations") or {}
            version = self._version_of(canary, svc, names)
            if version is not None and annotations.get(CANARY) == "true":
                share = max(0, min(100, int(annotations.get(CANARY_WEIGHT, "0") or 0)))
                if base is not None:
                    weights[base] -= share
                weights[version] = weights.get(version, 0) + share
        return weights

    def _set_primary(self, svc: ServiceConfig, names: dict[str, str], service_name: str) -> None:
        def mutate(ing: dict[str, Any]) -> dict[str, Any] | None:
            spec = self._retarget(ing, svc, names, service_name)
            if spec == ing.get("spec"):
                return None
            return {"spec": {k: spec[k] for k in ("rules", "defaultBackend") if k in spec}}

        name = self.object_name(svc)
        read_modify_write(
            lambda: self._read(name), mutate, lambda p: self._patch(name, p), self.what(svc), self.attempts
        )

    def _set_canary(self, svc: ServiceConfig, names: dict[str, str], version: str, service: str, weight: int) -> None:
        name = self.canary_name(svc)
        what = f"Ingress {self.namespace}/{name}"
        annotations = {CANARY: "true", CANARY_WEIGHT: str(weight), VERSION_LABEL: version}
        try:
            primary = self._read(self.object_name(svc))
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading {self.what(svc)}") from None
        spec = self._retarget(primary, svc, names, service)
        if self._read_canary(svc) is None:
            body = {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {**MANAGED_BY, SERVICE_LABEL: svc.name},
                    "annotations": {
                        **{
                            k: v
                            for k, v in (primary.get("metadata", {}).get("annotations") or {}).items()
                            if k == "kubernetes.io/ingress.class"
                        },
                        **annotations,
                    },
                },
                "spec": {k: v for k, v in spec.items() if k in ("ingressClassName", "rules", "tls")},
            }
            try:
                self.kube.raw(self.kube.net.create_namespaced_ingress, self.namespace, body)
                return
            except ApiException as exc:
                if exc.status != 409:  # created meanwhile: patch it below
                    raise api_error(exc, f"creating {what}") from None
            except Exception as exc:  # noqa: BLE001
                raise api_error(exc, f"creating {what}") from None

        def mutate(ing: dict[str, Any]) -> dict[str, Any] | None:
            current = ing.get("metadata", {}).get("annotations") or {}
            rules = spec.get("rules") or []
            if all(current.get(k) == v for k, v in annotations.items()) and ing.get("spec", {}).get("rules") == rules:
                return None
            return {"metadata": {"annotations": annotations}, "spec": {"rules": rules}}

        read_modify_write(lambda: self._read(name), mutate, lambda p: self._patch(name, p), what, self.attempts)

    def set_weights(self, svc: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        check_percents(weights)
        live = {v: w for v, w in weights.items() if w > 0}
        if len(live) > 2:
            raise RouterError(
                f"ingress-nginx splits traffic between two versions only, not {sorted(live)}", retryable=False
            )
        service_of = self.ensure_services(svc, weights)
        names = self.owned(svc)
        names.update({n: v for v, n in service_of.items()})
        current = self.get_weights(svc)
        base_now = next((v for v, w in current.items() if v in live and w > 0), None)
        try:
            primary = self._read(self.object_name(svc))
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading {self.what(svc)}") from None
        primary_version = self._version_of(primary, svc, names)
        if primary_version in live:
            base = primary_version
        elif len(live) == 1:
            base = next(iter(live))
        else:
            base = base_now or max(live, key=lambda v: (live[v], v))
        assert base is not None
        if primary_version != base:
            # Move the base under the canary's cover: all traffic to the base via the canary first,
            # then point the service's own Ingress at it (nothing moves), then set the real split.
            self._set_canary(svc, names, base, service_of[base], 100)
            self._set_primary(svc, names, service_of[base])
        other = next((v for v in live if v != base), None)
        canary = self._read_canary(svc)
        if other is not None:
            self._set_canary(svc, names, other, service_of[other], live[other])
        elif canary is not None:
            version = self._version_of(canary, svc, names) or base
            self._set_canary(svc, names, version, self._canary_service(canary, svc, names, base, service_of), 0)
        return self.verify(svc, weights)

    # --- segments: ingress-nginx's canary-by-header / -value / -pattern / canary-by-cookie --------------

    def set_segment(self, svc: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        wanted = nginx_segment_annotations(segment)
        canary = self._read_canary(svc)
        if segment is None and canary is None:
            return
        if segment is not None:
            service = self.ensure_services(svc, {version: 1})[version]
            names = self.owned(svc)
            names[service] = version
            if canary is None or self._version_of(canary, svc, names) != version:
                # The canary Ingress must carry the candidate for the segment to reach it; its
                # weight stays what it is (0 when no canary existed).
                share = self.get_weights(svc).get(version, 0)
                self._set_canary(svc, names, version, service, share)
        name = self.canary_name(svc)

        def mutate(ing: dict[str, Any]) -> dict[str, Any] | None:
            current = ing.get("metadata", {}).get("annotations") or {}
            if all(current.get(k) == v for k, v in wanted.items()):
                return None
            return {"metadata": {"annotations": wanted}}

        what = f"Ingress {self.namespace}/{name}"
        read_modify_write(lambda: self._read(name), mutate, lambda p: self._patch(name, p), what, self.attempts)
        after = self._read_canary(svc)
        current = ((after or {}).get("metadata") or {}).get("annotations") or {}
        if any(current.get(k) != v for k, v in wanted.items()):
            raise RouterError(
                f"{what} did not keep the segment Sluice set: wanted {wanted}, read back "
                f"{ {k: current.get(k) for k in wanted} }; is another controller rewriting it?",
                retryable=True,
            )

    def _canary_service(
        self, canary: dict[str, Any], svc: ServiceConfig, names: dict[str, str], base: str, service_of: dict[str, str]
    ) -> str:
        for backend in self._backends(canary):
            if backend.get("name") in names:
                return str(backend["name"])
        return service_of[base]
