"""Test doubles for the integration tests: our own Router protocol in memory, and real local HTTP
servers that speak Prometheus's query API and act as webhook receivers.

Nothing here patches a library: the real prometheus-api-client and requests talk to these
servers over loopback, and Redis is a real redis-server.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.config.services import ServiceConfig
from integrations.routers.interface import RouterError, VersionHealth

# --- router ---------------------------------------------------------------------------------------


class FakeRouter:
    """An in-memory Router (our own protocol). Records every set_weights call.

    - `fail_next(n, retryable)` makes the next n set_weights calls raise RouterError;
    - versions in `missing` have no server: weights > 0 for them raise a non-retryable RouterError,
      as HAProxy does for a version with no server in the backend.
    """

    def __init__(self, weights: dict[str, dict[str, int]] | None = None, missing: set[str] | None = None):
        self.weights: dict[str, dict[str, int]] = {k: dict(v) for k, v in (weights or {}).items()}
        self.missing = set(missing or ())
        self.calls: list[tuple[str, dict[str, int]]] = []  # successful and failed attempts
        self.applied: list[tuple[str, dict[str, int]]] = []  # only those that took effect
        self.healthy = True
        self._failures: list[bool] = []
        self._lock = threading.Lock()

    def fail_next(self, n: int = 1, retryable: bool = True) -> None:
        with self._lock:
            self._failures += [retryable] * n

    def get_weights(self, service: ServiceConfig) -> dict[str, int]:
        with self._lock:
            return dict(self.weights.get(service.name, {}))

    def set_weights(self, service: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        with self._lock:
            self.calls.append((service.name, dict(weights)))
            if self._failures:
                retryable = self._failures.pop(0)
                raise RouterError(f"fake router: injected failure for {service.name}", retryable=retryable)
            for version, w in weights.items():
                if w > 0 and version in self.missing:
                    raise RouterError(f"backend {service.name} has no server for version {version}", retryable=False)
            current = self.weights.setdefault(service.name, {})
            for version in current:
                current[version] = 0
            current.update(weights)
            self.applied.append((service.name, dict(weights)))
            return dict(current)

    def health(self, service: ServiceConfig, version: str) -> VersionHealth:
        if version in self.missing:  # as HAProxy's router: a version without a server is an error, not "down"
            raise RouterError(f"backend {service.name}: no server for {version}", retryable=False)
        return VersionHealth(self.healthy, "up" if self.healthy else "down")

    def applied_weights(self, service: str) -> list[dict[str, int]]:
        return [w for s, w in self.applied if s == service]


# --- a tiny HTTP server in a thread ---------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _Server:
    def __init__(self, handler: Callable[[Recorded], tuple[int, dict[str, str], bytes]]):
        outer = self
        self.requests: list[Recorded] = []
        self._handler = handler

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, dict(self.headers.items()), body, time.time())
                outer.requests.append(rec)
                status, headers, payload = outer._handler(rec)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Prometheus -----------------------------------------------------------------------------------


class FakePrometheus:
    """Answers GET/POST /api/v1/query like Prometheus, with a value per version.

    `values[version]` is the number every query about that version returns (matched on
    `version="<v>"` in the query); None means an empty result (no data). `rules` come first:
    (substring, value) pairs, all substrings of a rule must be in the query (separate them with
    "&&"). Queries that match nothing get `default`.

    Response counts (`PrometheusProvider.response_counts`) are vectors, programmed per version:
    - `counts[version] = {"200": 970, "500": 30}` answers the query `sum by (code)` with one
      series per code (label `status_label`);
    - `buckets[version] = {0.1: 900, 0.5: 990, math.inf: 1000}` answers `sum by (le)` with one
      series per bound (`le="0.1"`, `le="+Inf"`); without it, a version with `counts` has only
      the +Inf bucket (all its requests, no latency information);
    - a version with no counts has none (an empty vector: no data). `values`, `rules` and
      `default` never answer these queries: a scalar is an error rate or a request rate, not a
      split by code, and is not guessed into one;
    - the "why no data" queries: `up` of a version's targets comes from `up[version]` (0 or 1; an
      empty vector if unset), and the versions of a service are the versions in `counts`.
    """

    def __init__(self, version_label: str = "version", status_label: str = "code"):
        self.values: dict[str, float | None] = {}
        self.rules: list[tuple[str, float | None]] = []
        self.default: float | None = 0.0
        self.counts: dict[str, dict[str, float]] = {}
        self.buckets: dict[str, dict[float, float]] = {}
        self.up: dict[str, float] = {}
        self.queries: list[str] = []
        self.version_label = version_label
        self.status_label = status_label
        self._server = _Server(self._answer)
        self.url = self._server.url

    def serve(
        self, version: str, requests: float = 2000, errors: float = 0, client_errors: float = 0, slow: float = 0
    ) -> None:
        """Program `version`'s response counts (whatever the span asked about): `requests` responses,
        of which `errors` 500s and `client_errors` 404s (the rest 200s), `slow` of them over 500 ms
        (buckets 0.1, 0.5, 1 and +Inf; none over 1 s)."""
        codes = {"200": requests - errors - client_errors}
        if errors:
            codes["500"] = errors
        if client_errors:
            codes["404"] = client_errors
        self.counts[version] = codes
        fast = requests - slow
        self.buckets[version] = {0.1: 0.8 * fast, 0.5: fast, 1.0: requests, math.inf: requests}

    def healthy(self, candidate: str, stable: str, requests: float = 2000) -> None:
        """Both versions with plenty of 2xx and fast responses: enough evidence for a step to pass
        (10% of the traffic on the candidate)."""
        self.serve(candidate, requests)
        self.serve(stable, 9 * requests)

    def _value_for(self, query: str) -> float | None:
        for needles, value in self.rules:
            if all(n in query for n in needles.split("&&")):
                return value
        for version, value in self.values.items():
            if f'{self.version_label}="{version}"' in query:
                return value
        return self.default

    def _version_in(self, query: str, versions: Iterable[str]) -> str | None:
        for version in versions:
            if f'{self.version_label}="{version}"' in query:
                return version
        return None

    def _vector_for(self, query: str) -> list[tuple[dict[str, str], float]] | None:
        """The series of a response-counts query, or None for any other query."""
        joint = ") or (sum by (le) ("
        if query.startswith(f"(sum by ({self.status_label}) (") and joint in query:
            # `(status counts) or (bucket counts)`: one query for both (PrometheusProvider)
            cut = query.index(joint)
            left, right = query[1:cut], query[cut + len(") or (") : -1]
            return (self._vector_for(left) or []) + (self._vector_for(right) or [])
        if query.startswith(f"sum by ({self.status_label}) ("):
            version = self._version_in(query, self.counts)
            codes = self.counts[version] if version is not None else {}
            return [({self.status_label: code}, n) for code, n in codes.items()]
        if query.startswith("sum by (le) ("):
            version = self._version_in(query, [*self.buckets, *self.counts])
            if version is None:
                return []
            bounds = self.buckets.get(version) or {math.inf: sum(self.counts.get(version, {}).values())}
            return [({"le": "+Inf" if b == math.inf else repr(float(b))}, n) for b, n in bounds.items()]
        if "min_over_time(up" in query:
            version = self._version_in(query, self.up)
            if version is None:
                return []
            return [({"job": "fake", "instance": f"fake-{version}"}, self.up[version])]
        if query.startswith(f"count by ({self.version_label}"):
            return [({self.version_label: version}, float(len(codes))) for version, codes in self.counts.items()]
        return None

    def _answer(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(rec.path)
        if parts.path != "/api/v1/query":
            return 404, {"Content-Type": "text/plain"}, b"404 page not found"
        params = parse_qs(parts.query)
        if rec.body:
            params.update(parse_qs(rec.body.decode()))
        query = params.get("query", [""])[0]
        at = float(params.get("time", [str(time.time())])[0])
        self.queries.append(query)
        series = self._vector_for(query)
        if series is None:
            value = self._value_for(query)
            series = [] if value is None else [({}, value)]
        result = [{"metric": labels, "value": [at, repr(float(value))]} for labels, value in series]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def start(self) -> FakePrometheus:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


# --- webhook receiver -----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class WebhookReceiver:
    """Records every request; answers with the queued replies in order, then `default`."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.default = Reply()
        self._server = _Server(self._answer)
        self.url = self._server.url
        self.requests = self._server.requests

    def reply(self, *replies: Reply) -> None:
        self.replies += replies

    def _answer(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        reply = self.replies.pop(0) if self.replies else self.default
        return reply.status, {"Content-Type": "text/plain", **reply.headers}, reply.body

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def running(server: Any) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- configuration and context ----------------------------------------------------------------------

BASE_CONFIG = """
prometheus:
  url: http://127.0.0.1:1
  timeout: 2s
applications:
  - name: shop
    namespace: prod
    router: {type: haproxy, socket: "127.0.0.1:1"}
    services:
      - {name: web, policy: canary, stable_version: 1.0.0}
      - {name: api, policy: quick, stable_version: 2.0.0}
      - {name: cart, policy: hold, stable_version: 3.0.0}
      - {name: search, policy: hold-timeout, stable_version: 4.0.0}
      - {name: admin, policy: gated, stable_version: 5.0.0}
      - {name: legacy, policy: quick}
      - {name: orders, policy: volume, stable_version: 6.0.0}
policies:
  - name: canary
    interval: 500ms
    judge: {warmup: 0s}
    window: 30s
    steps:
      - {weight: 10, duration: 1s}
      - {weight: 50, duration: 1s}
      - {weight: 100}
    checks:
      - {name: errors, type: error_rate, max: 0.05}
  - name: quick
    interval: 500ms
    judge: {warmup: 0s}
    steps: [{weight: 10}, {weight: 50}, {weight: 100}]
    checks:
      - {name: errors, type: error_rate, max: 0.05}
  - name: hold
    interval: 500ms
    judge: {warmup: 0s}
    on_no_data: hold
    steps: [{weight: 10}, {weight: 100}]
    checks:
      - {name: errors, type: error_rate, max: 0.05}
  - name: hold-timeout
    interval: 500ms
    judge: {warmup: 0s}
    on_no_data: hold
    no_data_timeout: 1s
    steps: [{weight: 10}, {weight: 100}]
    checks:
      - {name: errors, type: error_rate, max: 0.05}
  - name: volume
    interval: 500ms
    judge: {warmup: 0s}
    steps: [{weight: 10, requests: 100}, {weight: 100}]
    checks:
      - {name: vs-stable, type: error_rate, max_over_stable: 0.02}
  - name: gated
    interval: 500ms
    judge: {warmup: 0s}
    steps: [{weight: 20, pause: true}, {weight: 100}]
    checks:
      - {name: errors, type: error_rate, max: 0.05}
"""


def config_text(hooks: str = "") -> str:
    return BASE_CONFIG + (("hooks:\n" + hooks) if hooks else "")


@contextmanager
def shop_context(config: str, redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    """A Context on `config` whose application `shop` routes through `router`, installed as the
    process's context (what the web and RQ jobs use) while the test runs, and closed after."""
    context = Context(config=parse_config(config), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = router
    set_context(context)
    try:
        yield context
    finally:
        set_context(None)
        context.prometheus.close()
        context.store.r.close()
