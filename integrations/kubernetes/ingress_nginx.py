"""ingress-nginx router: two Ingresses for one host/path. The service's own Ingress keeps the base
version; a canary Ingress that Sluice creates from it carries the other version with
`nginx.ingress.kubernetes.io/canary-weight` percent. Segments are ingress-nginx's canary-by-header /
-value / -pattern / canary-by-cookie annotations on the canary Ingress (shapes.py).

Writes are strategic-merge patches (annotations merge, so others' survive; the atomic `rules` list
is resent) carrying the resourceVersion read; a 409 means re-read, re-apply, retry
(objects.read_modify_write). Every change is read back and compared with what was asked.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from integrations.kubernetes.cluster import MANAGED_BY, SERVICE_LABEL, VERSION_LABEL, api_error, status_of
from integrations.kubernetes.config import KubernetesRouterConfig
from integrations.kubernetes.objects import read_modify_write
from integrations.kubernetes.router_base import KubernetesRouter
from integrations.kubernetes.shapes import nginx_check_step, nginx_segment_annotations
from integrations.routers.interface import RouterError, RouterKind, check_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import SegmentConfig


class IngressNginxRouterConfig(KubernetesRouterConfig):
    """ingress-nginx: Sluice creates a canary Ingress from the service's Ingress and sets `canary-weight`."""

    type: Literal["ingress-nginx"]


# read the service's Ingress, create and steer the canary Ingress
INGRESS_NGINX_CALLS = frozenset(
    {
        ("networking.k8s.io", "ingresses", "get"),
        ("networking.k8s.io", "ingresses", "create"),
        ("networking.k8s.io", "ingresses", "patch"),
    }
)

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
STRATEGIC = "application/strategic-merge-patch+json"


class IngressNginxRouter(KubernetesRouter):
    """Two Ingresses for one host/path: the service's own (the base version) and Sluice's canary
    (the other version, `canary-weight` percent). Only two versions can share traffic."""

    kind = "Ingress"
    proxy_series = "ingress-nginx"

    def canary_name(self, svc: ServiceConfig) -> str:
        return self.object_name(svc) + "-sluice-canary"

    def _read(self, name: str) -> dict[str, Any]:
        return self.kube.raw(self.kube.net.read_namespaced_ingress, name, self.namespace)

    def _read_canary(self, svc: ServiceConfig) -> dict[str, Any] | None:
        try:
            return self._read(self.canary_name(svc))
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) == 404:
                return None
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
            except Exception as exc:  # noqa: BLE001
                if status_of(exc) != 409:  # created meanwhile: patch it below
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


KIND = RouterKind(
    IngressNginxRouterConfig,
    IngressNginxRouter,
    "ingress-nginx canary Ingress",
    needs_cluster=True,
    permissions=INGRESS_NGINX_CALLS,
    shapes=frozenset({"weights", "segment"}),
    cannot={"mirror": "ingress-nginx's mirror-target copies every request (no share); Sluice does not set it"},
    check_step=nginx_check_step,
)
