"""The fake API server's storage (what etcd and the registry do for it) and the test controls that
act on it directly, as kubectl and the cluster's controllers would.

- one resourceVersion counter for everything; metadata.generation bumped when spec changes; uid and
  creationTimestamp on create; the status kept on a write to the main resource;
- every object stored is admitted first: its kind's schema (tests/support/kube_schemas.py) and the
  Go-side rules (tests/support/kube_checks.py). Writes over HTTP follow the request's
  fieldValidation (default Warn: unknown fields dropped, warned about, and recorded in `warnings`);
  the test controls use Strict, so a test cannot seed an object a real cluster would not hold.

Test controls: `apply`, `mutate`, `delete`, `get`, `list`, `before_next_write` / `after_next_write`
(another writer's change around the next write to a resource), `drop_watches`, `refuse_watches`,
`compact`, and the record of writes (`writes`, `writes_to`).
"""

from __future__ import annotations

import builtins
import copy
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support import kube_checks, kube_schemas
from tests.support.kube_errors import ApiError

RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    # (group, plural) -> (version, kind)
    ("", "services"): ("v1", "Service"),
    ("", "pods"): ("v1", "Pod"),
    ("apps", "deployments"): ("v1", "Deployment"),
    ("networking.k8s.io", "ingresses"): ("v1", "Ingress"),
    ("gateway.networking.k8s.io", "httproutes"): ("v1", "HTTPRoute"),
    ("projectcontour.io", "httpproxies"): ("v1", "HTTPProxy"),
    ("networking.istio.io", "virtualservices"): ("v1", "VirtualService"),
    ("networking.istio.io", "destinationrules"): ("v1", "DestinationRule"),
    ("traefik.io", "traefikservices"): ("v1alpha1", "TraefikService"),
    ("autoscaling", "horizontalpodautoscalers"): ("v2", "HorizontalPodAutoscaler"),
}
BUILT_IN_GROUPS = {"", "apps", "networking.k8s.io", "autoscaling"}
Key = tuple[str, str, str, str]  # group, plural, namespace, name


@dataclass
class Write:
    at: float
    verb: str
    group: str
    plural: str
    name: str
    body: Any
    status: int


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_version(group: str, plural: str) -> str:
    version = RESOURCES[(group, plural)][0]
    return f"{group}/{version}" if group else version


class KubeStore:
    def __init__(self, bookmark_interval: float = 0.5) -> None:
        self.bookmark_interval = bookmark_interval
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 100
        self.compacted = 0
        self.events: list[tuple[int, Key, str, dict[str, Any]]] = []
        self.writes: list[Write] = []
        # Warnings sent for HTTP writes (unknown fields a real server drops): Sluice should cause none.
        self.warnings: list[str] = []
        # Watch disruptions (drop_watches, refuse_watches): the generation of open watches to cut,
        # how many watch requests to answer 503, and every watch request's resourceVersion.
        self._watch_generation = 0
        self.refused_watches = 0
        self.watch_starts: list[str | None] = []
        self._hooks: list[tuple[str, str, Callable[[], None]]] = []
        self._after: list[tuple[str, str, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._stopping = False

    # --- storage (callers hold self._cond) -------------------------------------------------------------

    def _emit(self, key: Key, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((self.rv, key, kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _admit(self, group: str, plural: str, obj: dict[str, Any], field_validation: str) -> list[str]:
        """Schema and Go-side validation of `obj` as it would be stored (raises the refusal)."""
        version, kind = RESOURCES[(group, plural)]
        obj["apiVersion"], obj["kind"] = api_version(group, plural), kind
        warnings = kube_schemas.admit(obj, group, version, kind, field_validation)
        kube_checks.check(obj, group, kind)
        self.warnings += warnings
        return warnings

    def _create(
        self, group: str, plural: str, ns: str, obj: dict[str, Any], field_validation: str = "Strict"
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        meta["namespace"] = ns
        self._admit(group, plural, obj, field_validation)
        name = meta["name"]
        key = (group, plural, ns, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        self.rv += 1
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(self.rv),
            generation=1,
            creationTimestamp=meta.get("creationTimestamp") or _now(),
        )
        self.objects[key] = obj
        self._emit(key, "ADDED", obj)
        return copy.deepcopy(obj)

    def _replace(
        self, key: Key, new: dict[str, Any], keep_status: bool = True, field_validation: str = "Strict"
    ) -> dict[str, Any]:
        old = self.objects[key]
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name"):
            meta[field] = old["metadata"][field]
        meta["generation"] = old["metadata"]["generation"] + (1 if new.get("spec") != old.get("spec") else 0)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if keep_status and "status" in old:
            new["status"] = old["status"]
        elif keep_status:
            new.pop("status", None)
        self._admit(key[0], key[1], new, field_validation)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[key] = new
        self._emit(key, "MODIFIED", new)
        return copy.deepcopy(new)

    def _delete(self, key: Key) -> dict[str, Any]:
        obj = self.objects.pop(key)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(key, "DELETED", obj)
        return obj

    # --- test controls --------------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace spec/metadata/status (a test acting as kubectl and the controllers)."""
        group_version = obj["apiVersion"]
        group = group_version.split("/")[0] if "/" in group_version else ""
        plural = next(p for (g, p), (_, kind) in RESOURCES.items() if g == group and kind == obj["kind"])
        ns = obj["metadata"].get("namespace", "default")
        key = (group, plural, ns, obj["metadata"]["name"])
        with self._cond:
            if key not in self.objects:
                return self._create(group, plural, ns, copy.deepcopy(obj))
            merged = copy.deepcopy(self.objects[key])
            merged.update({k: copy.deepcopy(v) for k, v in obj.items() if k != "metadata"})
            merged["metadata"].update(copy.deepcopy(obj["metadata"]))
            return self._replace(key, merged, keep_status="status" not in obj)

    def mutate(self, group: str, plural: str, ns: str, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Another writer changes an object (in place on a copy), bumping its resourceVersion."""
        with self._cond:
            key = (group, plural, ns, name)
            obj = copy.deepcopy(self.objects[key])
            change(obj)
            self._replace(key, obj, keep_status=False)

    def delete(self, group: str, plural: str, ns: str, name: str) -> None:
        with self._cond:
            self._delete((group, plural, ns, name))

    def get(self, group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self._cond:
            obj = self.objects.get((group, plural, ns, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, group: str, plural: str, ns: str) -> builtins.list[dict[str, Any]]:
        with self._cond:
            return [copy.deepcopy(o) for (g, p, n, _), o in self.objects.items() if (g, p, n) == (group, plural, ns)]

    def before_next_write(self, group: str, plural: str, change: Callable[[], None]) -> None:
        """Run `change` (e.g. a `mutate`) just before the next PUT/PATCH to this resource is served."""
        with self._cond:
            self._hooks.append((group, plural, change))

    def after_next_write(self, group: str, plural: str, change: Callable[[], None]) -> None:
        """Run `change` just after the next successful PUT/PATCH to this resource (before its reply)."""
        with self._cond:
            self._after.append((group, plural, change))

    def _run_hooks(self, group: str, plural: str) -> None:
        with self._cond:
            due = [h for h in self._hooks if h[:2] == (group, plural)][:1]
            for h in due:
                self._hooks.remove(h)
        for _, _, change in due:
            change()

    def _run_after(self, group: str, plural: str) -> None:
        due = [h for h in self._after if h[:2] == (group, plural)][:1]
        for h in due:
            self._after.remove(h)
            h[2]()

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream, without ending the chunked response (as a
        restarting API server or a load balancer's idle timeout does)."""
        with self._cond:
            self._watch_generation += 1
            self._cond.notify_all()

    def refuse_watches(self, n: int) -> None:
        """Answer the next `n` watch requests 503 (an API server that is down or overloaded)."""
        with self._cond:
            self.refused_watches = n

    def compact(self) -> None:
        """Forget history: any watch from a resourceVersion up to now gets 410 Gone."""
        with self._cond:
            self.rv += 1
            self.compacted = self.rv
            self.events = []

    def writes_to(self, plural: str, name: str | None = None) -> builtins.list[Write]:
        return [w for w in self.writes if w.plural == plural and (name is None or w.name == name) and w.status < 300]
