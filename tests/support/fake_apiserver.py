"""A small Kubernetes API server for tests: real HTTP, so the official `kubernetes` client talks to
it unchanged (a kubeconfig points at http://127.0.0.1:<port>).

What it does like the real one, as far as Sluice uses it:
- paths: /api/v1/namespaces/<ns>/{services,pods}, /apis/apps/v1/.../deployments,
  /apis/networking.k8s.io/v1/.../ingresses, /apis/gateway.networking.k8s.io/v1/.../httproutes,
  /apis/projectcontour.io/v1/.../httpproxies,
  /apis/networking.istio.io/v1/.../{virtualservices,destinationrules},
  /apis/traefik.io/v1alpha1/.../traefikservices, /apis/autoscaling/v2/.../horizontalpodautoscalers
  (get, list, watch, create, update, patch, delete), and the Deployment's `scale` subresource (get,
  patch, update: an autoscaling/v1 Scale whose resourceVersion is the Deployment's; writing it sets
  the Deployment's spec.replicas, nothing else);
- one resourceVersion counter for everything; metadata.generation bumped when spec changes;
  uid and creationTimestamp on create;
- 201 on create, 409 AlreadyExists on create of an existing name, 409 Conflict on a PUT or a PATCH
  whose metadata.resourceVersion is stale, 404 NotFound;
- label selectors (=, ==, !=, in, notin, exists, !exists);
- PATCH: application/json-patch+json (a list of ops; an object body is a 400, as on a real server),
  application/merge-patch+json (RFC 7386), application/strategic-merge-patch+json (built-in types
  only; maps merge, lists are replaced - right for the atomic lists Sluice patches);
- watch: chunked stream of ADDED / MODIFIED / DELETED, BOOKMARK when allowed (cut mid-stream by
  `drop_watches`, refused with 503 by `refuse_watches`), ERROR 410 Gone for a
  resourceVersion older than the last `compact()`, and the stream ends after timeoutSeconds.

Test controls (Python, not HTTP): `apply`, `mutate`, `delete`, `get`, `before_next_write` (inject
another writer's change before the next write to a resource), `compact`, and the record of calls
(`calls`: (group, resource, verb)) and writes.
"""

from __future__ import annotations

import builtins
import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass
class Write:
    at: float
    verb: str
    group: str
    plural: str
    name: str
    body: Any
    status: int


# --- label selectors ----------------------------------------------------------------------------------


def _split_selector(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in _split_selector(selector or ""):
        if " notin " in term or " in " in term:
            neg = " notin " in term
            key, _, values = term.partition(" notin " if neg else " in ")
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            present = labels.get(key.strip()) in allowed
            if present == neg:
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


# --- patches --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (also our strategic merge: maps merge, lists are replaced, null deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"replace of missing {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        else:
            raise ApiError(422, "Invalid", f"unsupported op {kind}")
    return doc


# --- the server ------------------------------------------------------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeApiServer:
    def __init__(self, bookmark_interval: float = 0.5):
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 100
        self.compacted = 0
        self.events: list[tuple[int, Key, str, dict[str, Any]]] = []
        self.calls: set[tuple[str, str, str]] = set()
        self.writes: list[Write] = []
        self.requests = 0
        # SelfSubjectAccessReview: every (group, resource, verb) is allowed but these
        self.denied: set[tuple[str, str, str]] = set()
        self.bookmark_interval = bookmark_interval
        # Watch disruptions (drop_watches, refuse_watches): the generation of open watches to cut,
        # how many watch requests to answer 503, and every watch request's resourceVersion.
        self._watch_generation = 0
        self.refused_watches = 0
        self.watch_starts: list[str | None] = []
        self._hooks: list[tuple[str, str, Callable[[], None]]] = []
        self._after: list[tuple[str, str, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path, context: str = "fake", namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "sluice-test-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
            "current-context": context,
        }
        path.write_text(json.dumps(config))
        return path

    # --- the store (used by HTTP handlers and by tests) -------------------------------------------------

    def _emit(self, key: Key, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((self.rv, key, kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _create(self, group: str, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        version, kind = RESOURCES[(group, plural)]
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        key = (group, plural, ns, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        self.rv += 1
        obj["apiVersion"] = f"{group}/{version}" if group else version
        obj["kind"] = kind
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            resourceVersion=str(self.rv),
            generation=1,
            creationTimestamp=meta.get("creationTimestamp") or _now(),
        )
        self.objects[key] = obj
        self._emit(key, "ADDED", obj)
        return copy.deepcopy(obj)

    def _replace(self, key: Key, new: dict[str, Any], keep_status: bool = True) -> dict[str, Any]:
        old = self.objects[key]
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name"):
            meta[field] = old["metadata"][field]
        meta["generation"] = old["metadata"]["generation"] + (1 if new.get("spec") != old.get("spec") else 0)
        if keep_status and "status" in old:
            new["status"] = old["status"]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
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

    def list(self, group: str, plural: str, ns: str) -> list[dict[str, Any]]:
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

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one response = one segment: no delayed-ACK stalls

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw else None

            def _send(self, code: int, obj: Any) -> None:
                payload = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _serve(self) -> None:
                server.requests += 1
                try:
                    body = self._body() if self.command in ("POST", "PUT", "PATCH") else None
                    result = server._route(self, self.command, self.path, body)
                    if result is not None:
                        self._send(*result)
                except ApiError as exc:
                    self._send(exc.code, exc.status())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler

    @staticmethod
    def _parse(path: str) -> tuple[str, str, str, str | None, str | None]:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
        if len(rest) < 3 or rest[0] != "namespaces":
            raise ApiError(404, "NotFound", f"only namespaced paths are served: {path}")
        ns, plural = rest[1], rest[2]
        if (group, plural) not in RESOURCES:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({group}/{plural})")
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else None
        return group, plural, ns, name, sub

    def _route(self, handler: BaseHTTPRequestHandler, method: str, raw_path: str, body: Any) -> Any:
        url = urlsplit(raw_path)
        if url.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" and method == "POST":
            return self._access_review(body)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        group, plural, ns, name, sub = self._parse(url.path)
        verb = {
            "GET": "get" if name else ("watch" if str(query.get("watch")).lower() in ("true", "1") else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }[method]
        self.calls.add((group, plural + (f"/{sub}" if sub else ""), verb))
        if verb == "watch":
            with self._cond:
                # The generation is taken with the count: a drop_watches() after a test saw this
                # watch start cuts it.
                self.watch_starts.append(query.get("resourceVersion"))
                generation = self._watch_generation
                refused = self.refused_watches > 0
                self.refused_watches -= 1 if refused else 0
            if refused:
                raise ApiError(503, "ServiceUnavailable", "the API server is unavailable (refuse_watches)")
            self._watch(handler, group, plural, ns, query, generation)
            return None
        if verb in ("update", "patch"):
            self._run_hooks(group, plural)
        with self._cond:
            try:
                code, obj = self._serve_verb(verb, group, plural, ns, name, sub, query, body, handler)
            except ApiError as exc:
                if verb in ("create", "update", "patch", "delete"):
                    self.writes.append(Write(time.time(), verb, group, plural, name or "", body, exc.code))
                raise
            if verb in ("create", "update", "patch", "delete"):
                self.writes.append(Write(time.time(), verb, group, plural, name or obj["metadata"]["name"], body, code))
            if verb in ("update", "patch"):
                due = [h for h in self._after if h[:2] == (group, plural)][:1]
                for h in due:
                    self._after.remove(h)
                    h[2]()
            return code, obj

    def _access_review(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST selfsubjectaccessreviews: allowed unless (group, resource[/subresource], verb) is in `denied`."""
        attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        resource = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        allowed = (attrs.get("group", ""), resource, attrs.get("verb", "")) not in self.denied
        return 201, {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": body.get("spec", {}),
            "status": {"allowed": allowed, **({} if allowed else {"reason": "denied by the test"})},
        }

    def _run_hooks(self, group: str, plural: str) -> None:
        with self._cond:
            due = [h for h in self._hooks if h[:2] == (group, plural)][:1]
            for h in due:
                self._hooks.remove(h)
        for _, _, change in due:
            change()

    def _serve_verb(
        self,
        verb: str,
        group: str,
        plural: str,
        ns: str,
        name: str | None,
        sub: str | None,
        query: dict[str, str],
        body: Any,
        handler: BaseHTTPRequestHandler,
    ) -> tuple[int, dict[str, Any]]:
        version, kind = RESOURCES[(group, plural)]
        key = (group, plural, ns, name or "")
        if verb == "list":
            items = [
                copy.deepcopy(o)
                for (g, p, n, _), o in self.objects.items()
                if (g, p, n) == (group, plural, ns)
                and matches(query.get("labelSelector"), o["metadata"].get("labels") or {})
            ]
            api_version = f"{group}/{version}" if group else version
            return 200, {
                "kind": kind + "List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        if verb == "create":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of a create must be an object")
            return 201, self._create(group, plural, ns, copy.deepcopy(body))
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        current = self.objects[key]
        if (group, plural, sub) == ("apps", "deployments", "scale"):
            return self._serve_scale(verb, key, body, handler)
        if verb == "get":
            return 200, copy.deepcopy(current)
        if verb == "delete":
            return 200, self._delete(key)
        if verb == "update":
            sent = (body or {}).get("metadata", {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", self._conflict(plural, name))
            if sub == "status":
                new = copy.deepcopy(current)
                new["status"] = body.get("status")
                return 200, self._replace(key, new, keep_status=False)
            return 200, self._replace(key, body)
        # patch
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type []jsonpatch.Op")
            new = json_patch(current, body)
        elif ctype == "application/merge-patch+json":
            new = merge_patch(current, body)
        elif ctype == "application/strategic-merge-patch+json":
            if group not in BUILT_IN_GROUPS:
                raise ApiError(
                    415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources"
                )
            new = merge_patch(current, body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        sent = (body or {}).get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", self._conflict(plural, name))
        return 200, self._replace(key, new, keep_status=sub != "status")

    def _serve_scale(
        self, verb: str, key: Key, body: Any, handler: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, Any]]:
        """deployments/{name}/scale: the Deployment seen as an autoscaling/v1 Scale."""
        dep = self.objects[key]
        if verb == "get":
            return 200, self._scale(dep)
        if verb not in ("patch", "update"):
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on deployments/scale")
        if verb == "patch":
            ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ApiError(400, "BadRequest", "json: cannot unmarshal object into []jsonpatch.Op")
                new = json_patch(self._scale(dep), body)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                new = merge_patch(self._scale(dep), body)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
                )
        else:
            new = body or {}
        sent = (body or {}).get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        if sent and sent != dep["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", self._conflict("deployments.apps", key[3]))
        replicas = (new.get("spec") or {}).get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{key[3]}" is invalid: spec.replicas: {replicas!r}')
        changed = copy.deepcopy(dep)
        changed["spec"]["replicas"] = replicas
        return 200, self._scale(self._replace(key, changed))

    @staticmethod
    def _scale(dep: dict[str, Any]) -> dict[str, Any]:
        meta = dep["metadata"]
        labels = (dep.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": dep.get("spec", {}).get("replicas", 1)},
            "status": {
                "replicas": (dep.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in labels.items()),
            },
        }

    @staticmethod
    def _conflict(plural: str, name: str | None) -> str:
        return (
            f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )

    def _watch(
        self,
        handler: BaseHTTPRequestHandler,
        group: str,
        plural: str,
        ns: str,
        query: dict[str, str],
        generation: int,
    ) -> None:
        selector = query.get("labelSelector")
        timeout = float(query.get("timeoutSeconds") or 30)
        bookmarks = str(query.get("allowWatchBookmarks")).lower() in ("true", "1")
        version, kind = RESOURCES[(group, plural)]
        api_version = f"{group}/{version}" if group else version
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: dict[str, Any]) -> None:
            line = (json.dumps(event) + "\n").encode()
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            with self._cond:
                start = query.get("resourceVersion")
                pending: list[dict[str, Any]] = []
                if start in (None, "", "0"):
                    cursor = self.rv
                    for (g, p, n, _), o in self.objects.items():
                        if (g, p, n) == (group, plural, ns) and matches(selector, o["metadata"].get("labels") or {}):
                            pending.append({"type": "ADDED", "object": copy.deepcopy(o)})
                elif int(start) < self.compacted:
                    gone = ApiError(410, "Expired", f"too old resource version: {start} ({self.compacted})")
                    pending.append({"type": "ERROR", "object": gone.status()})
                    deadline = 0.0
                    cursor = self.rv
                else:
                    cursor = int(start)
            for event in pending:
                send(event)
            last_bookmark = time.monotonic()
            while time.monotonic() < deadline:
                with self._cond:
                    if self._stopping:
                        break
                    if self._watch_generation != generation:  # drop_watches: cut, no final chunk
                        handler.close_connection = True
                        handler.connection.shutdown(socket.SHUT_RDWR)
                        return
                    fresh = [e for e in self.events if e[0] > cursor and e[1][:3] == (group, plural, ns)]
                    if not fresh:
                        self._cond.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
                        fresh = [e for e in self.events if e[0] > cursor and e[1][:3] == (group, plural, ns)]
                    cursor = current_rv = self.rv  # every event up to here is in `fresh` (or not ours)
                for _, _, etype, obj in fresh:
                    if matches(selector, obj["metadata"].get("labels") or {}):
                        send({"type": etype, "object": obj})
                if bookmarks and time.monotonic() - last_bookmark >= self.bookmark_interval:
                    send(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": kind,
                                "apiVersion": api_version,
                                "metadata": {"resourceVersion": str(current_rv)},
                            },
                        }
                    )
                    last_bookmark = time.monotonic()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
