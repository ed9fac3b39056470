"""A small Kubernetes API server for tests: real HTTP, so the official `kubernetes` client talks to
it unchanged (a kubeconfig points at http://127.0.0.1:<port>). It checks what a client sends as a
real API server does, in the real server's order:

1. authentication: a bearer token maps to a service account (`tokens`; the kubeconfig's default
   token is Sluice's worker account from deploy/rbac.yaml); no or an unknown token is 401;
2. authorization: RBAC evaluated from deploy/rbac.yaml (tests/support/kube_rbac.py) on the verb
   (get/list/watch/create/update/patch/delete), API group, resource[/subresource], name and
   namespace; refused with 403 Forbidden worded like the real authorizer;
3. the resource: /api/v1/namespaces/<ns>/{services,pods}, /apis/apps/v1/.../deployments (and its
   `scale` subresource), /apis/networking.k8s.io/v1/.../ingresses,
   /apis/autoscaling/v2/.../horizontalpodautoscalers, and the custom resources Sluice's routers
   write: gateway.networking.k8s.io/v1 httproutes, projectcontour.io/v1 httpproxies,
   networking.istio.io/v1 virtualservices and destinationrules, traefik.io/v1alpha1 traefikservices;
   anything else is 404;
4. the write: PATCH as application/json-patch+json, application/merge-patch+json or (built-in types
   only) application/strategic-merge-patch+json (tests/support/kube_patch.py); 409 Conflict for a
   stale metadata.resourceVersion, 409 AlreadyExists, 404 NotFound; then the resulting object is
   validated against its schema and the Go-side rules before it is stored (tests/support/kube_store.py):
   422 Invalid with details.causes, or 400 for a wrongly typed built-in field.

Watches are served by tests/support/kube_watch.py. SelfSubjectAccessReview answers from the same
RBAC (minus `denied`, a test's extra refusals). `calls` records every (group, resource, verb) asked.
"""

from __future__ import annotations

import copy
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.kube_checks import bad
from tests.support.kube_errors import ApiError, bad_request, forbidden, invalid, unauthorized
from tests.support.kube_patch import json_patch, matches, merge_patch, strategic_merge_patch
from tests.support.kube_rbac import Rbac, Request, default_service_account, service_account_user
from tests.support.kube_store import BUILT_IN_GROUPS, RESOURCES, KubeStore, Write, api_version
from tests.support.kube_watch import serve_watch

__all__ = ["ApiError", "FakeApiServer", "RESOURCES", "Write", "matches"]

DEFAULT_TOKEN = "sluice-test-token"
# The namespaces the tests deploy applications to: deploy/rbac.yaml's RoleBinding is repeated into
# each, as its comment tells an operator to do.
APP_NAMESPACES = ("default", "prod")
WRITE_VERBS = ("create", "update", "patch", "delete")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json")


class FakeApiServer(KubeStore):
    def __init__(
        self,
        bookmark_interval: float = 0.5,
        rbac: Rbac | None = None,
        service_account: tuple[str, str] | None = None,
    ):
        super().__init__(bookmark_interval)
        self.rbac = rbac or Rbac.from_manifest(app_namespaces=APP_NAMESPACES)
        ns, name = service_account or default_service_account(self.rbac)
        self.tokens: dict[str, str] = {DEFAULT_TOKEN: service_account_user(ns, name)}
        self.calls: set[tuple[str, str, str]] = set()
        self.requests = 0
        # SelfSubjectAccessReview: a test's (group, resource, verb) refusals on top of RBAC.
        self.denied: set[tuple[str, str, str]] = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def token_for(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates as service account `namespace/name`."""
        token = f"token-{namespace}-{name}"
        self.tokens[token] = service_account_user(namespace, name)
        return token

    def kubeconfig(
        self,
        path: Path,
        context: str = "fake",
        namespace: str = "default",
        service_account: tuple[str, str] | None = None,
    ) -> Path:
        token = self.token_for(*service_account) if service_account else DEFAULT_TOKEN
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
            "current-context": context,
        }
        path.write_text(json.dumps(config))
        return path

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one response = one segment: no delayed-ACK stalls

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw) if raw else None
                except ValueError:
                    raise bad_request("the request body is not JSON") from None

            def _send(self, code: int, obj: Any, warnings: list[str] | None = None) -> None:
                payload = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for warning in warnings or []:
                    self.send_header("Warning", "299 - " + json.dumps(warning))
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

    def _user(self, handler: BaseHTTPRequestHandler) -> str:
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        user = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user

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
        return group, rest[2], rest[1], (rest[3] if len(rest) > 3 else None), (rest[4] if len(rest) > 4 else None)

    def _route(self, handler: BaseHTTPRequestHandler, method: str, raw_path: str, body: Any) -> Any:
        url = urlsplit(raw_path)
        user = self._user(handler)
        if url.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" and method == "POST":
            return self._access_review(user, body)  # every authenticated user may ask (system:basic-user)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        group, plural, ns, name, sub = self._parse(url.path)
        watching = str(query.get("watch")).lower() in ("true", "1")
        verb = {
            "GET": "get" if name else ("watch" if watching else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        self.calls.add((group, plural + (f"/{sub}" if sub else ""), verb))
        allowed, _ = self.rbac.allows(Request(user, verb, group, plural, sub, name, ns))
        if not allowed:
            if verb in WRITE_VERBS:
                self.writes.append(Write(time.time(), verb, group, plural, name or "", body, 403))
            raise forbidden(user, verb, group, plural, sub, name, ns)
        if (group, plural) not in RESOURCES:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({group}/{plural})")
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
            serve_watch(self, handler, group, plural, ns, query, generation)
            return None
        return self._write_or_read(handler, verb, group, plural, ns, name, sub, query, body)

    def _write_or_read(
        self,
        handler: BaseHTTPRequestHandler,
        verb: str,
        group: str,
        plural: str,
        ns: str,
        name: str | None,
        sub: str | None,
        query: dict[str, str],
        body: Any,
    ) -> tuple[int, dict[str, Any], list[str]]:
        if verb in ("update", "patch"):
            self._run_hooks(group, plural)
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f"fieldValidation parameter unsupported: {validation}")
        with self._cond:
            seen = len(self.warnings)
            try:
                code, obj = self._serve_verb(verb, group, plural, ns, name, sub, query, body, ctype, validation)
            except ApiError as exc:
                if verb in WRITE_VERBS:
                    self.writes.append(Write(time.time(), verb, group, plural, name or "", body, exc.code))
                raise
            if verb in WRITE_VERBS:
                self.writes.append(Write(time.time(), verb, group, plural, name or obj["metadata"]["name"], body, code))
            if verb in ("update", "patch"):
                self._run_after(group, plural)
            return code, obj, self.warnings[seen:]

    def _access_review(self, user: str, body: Any) -> tuple[int, dict[str, Any]]:
        """POST selfsubjectaccessreviews: what RBAC answers for the asking user, unless the test denies
        (group, resource[/subresource], verb) in `denied`."""
        attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        req = Request(
            user,
            attrs.get("verb", ""),
            attrs.get("group", ""),
            attrs.get("resource", ""),
            attrs.get("subresource") or None,
            attrs.get("name") or None,
            attrs.get("namespace") or None,
        )
        allowed, reason = self.rbac.allows(req)
        resource = req.resource + (f"/{req.subresource}" if req.subresource else "")
        if (req.group, resource, req.verb) in self.denied:
            allowed, reason = False, "denied by the test"
        return 201, {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": (body or {}).get("spec", {}),
            "status": {"allowed": allowed, **({"reason": reason} if reason else {})},
        }

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
        ctype: str,
        validation: str,
    ) -> tuple[int, dict[str, Any]]:
        kind = RESOURCES[(group, plural)][1]
        key = (group, plural, ns, name or "")
        if verb == "list":
            items = [
                copy.deepcopy(o)
                for (g, p, n, _), o in self.objects.items()
                if (g, p, n) == (group, plural, ns)
                and matches(query.get("labelSelector"), o["metadata"].get("labels") or {})
            ]
            meta = {"resourceVersion": str(self.rv)}
            return 200, {
                "kind": kind + "List",
                "apiVersion": api_version(group, plural),
                "metadata": meta,
                "items": items,
            }
        if verb == "create":
            if not isinstance(body, dict):
                raise bad_request("the body of a create must be an object")
            if body.get("kind", kind) != kind:
                raise bad_request(f"{body['kind']} cannot be handled as a {kind}: the kind does not match the URL")
            return 201, self._create(group, plural, ns, copy.deepcopy(body), validation)
        if key not in self.objects:
            raise ApiError(
                404, "NotFound", f'{plural}.{group} "{name}" not found' if group else f'{plural} "{name}" not found'
            )
        current = self.objects[key]
        if (group, plural, sub) == ("apps", "deployments", "scale"):
            return self._serve_scale(verb, key, body, ctype)
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural}/{sub})")
        if verb == "get":
            return 200, copy.deepcopy(current)
        if verb == "delete":
            return 200, self._delete(key)
        if verb == "update":
            self._check_version(body, current, plural, name)
            if sub == "status":
                new = copy.deepcopy(current)
                new["status"] = body.get("status")
                return 200, self._replace(key, new, keep_status=False, field_validation=validation)
            return 200, self._replace(key, body, field_validation=validation)
        new = self._patched(current, body, ctype, group in BUILT_IN_GROUPS)
        self._check_version(body, current, plural, name)
        if sub == "status":  # a patch to status changes status only
            new = {**copy.deepcopy(current), "status": new.get("status")}
        return 200, self._replace(key, new, keep_status=sub != "status", field_validation=validation)

    @staticmethod
    def _patched(current: dict[str, Any], body: Any, ctype: str, built_in: bool) -> dict[str, Any]:
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise bad_request("json: cannot unmarshal object into Go value of type []jsonpatch.Op")
            return json_patch(current, body)
        if ctype not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        if not isinstance(body, dict):
            raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        if ctype == "application/merge-patch+json":
            return merge_patch(current, body)
        if not built_in:
            raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources")
        return strategic_merge_patch(current, body)

    @staticmethod
    def _check_version(body: Any, current: dict[str, Any], plural: str, name: str | None) -> None:
        sent = (body or {}).get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )

    def _serve_scale(self, verb: str, key: Any, body: Any, ctype: str) -> tuple[int, dict[str, Any]]:
        """deployments/{name}/scale: the Deployment seen as an autoscaling/v1 Scale whose
        resourceVersion is the Deployment's; writing it sets spec.replicas and nothing else."""
        dep = self.objects[key]
        if verb == "get":
            return 200, self._scale(dep)
        if verb not in ("patch", "update"):
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on deployments/scale")
        new = self._patched(self._scale(dep), body, ctype, built_in=True) if verb == "patch" else (body or {})
        self._check_version(body, dep, "deployments.apps", key[3])
        replicas = (new.get("spec") or {}).get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            why = "must be greater than or equal to 0" if isinstance(replicas, int) else "must be an integer"
            raise invalid("Scale", "autoscaling", key[3], [bad("spec.replicas", replicas, why)])
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
