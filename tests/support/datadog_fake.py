"""A local HTTP server that answers Datadog's metrics query API (v1) from programmed traffic.

`GET /api/v1/query?from=<s>&to=<s>&query=<q>` with `DD-API-KEY` and `DD-APPLICATION-KEY`
(403 `{"errors": ["Forbidden"]}` otherwise). It understands the queries Sluice sends, one or
more comma-separated `<aggregator>:<metric>{<tag>:<value>,...}[ by {<tag>}][.as_count()]`:
`sum` over a count metric (one series per group, each point the requests in that interval) and
`pNN` over a distribution (the nearest-rank percentile of the programmed durations). Anything
else is a 400 `{"errors": ["Error parsing query: ..."]}`. Answers have Datadog's documented shape:
`status`, `series[]` with `metric`, `scope`, `tag_set`, `pointlist` ([ms, value]), `interval`,
`query_index`. `fail_next` queues injected answers (429 with X-RateLimit-* headers, 5xx, ...).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_EXPR_RE = re.compile(
    r"^(?P<agg>sum|avg|max|min|p\d+(?:\.\d+)?):(?P<metric>[A-Za-z][A-Za-z0-9_.]*)"
    r"\{(?P<scope>[^{}]*)\}(?: by \{(?P<by>[^{}]+)\})?(?P<count>\.as_count\(\))?$"
)


def rate_limit_headers(reset: int, name: str = "query") -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "1600",
        "X-RateLimit-Period": "3600",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Name": name,
    }


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Hits:
    """A count metric's traffic: `per_second` requests with these tags, all the time."""

    tags: dict[str, str]
    per_second: float


@dataclass
class Durations:
    """A distribution metric's values for these tags (the same in every interval)."""

    tags: dict[str, str]
    values: list[float]


@dataclass
class Seen:
    params: dict[str, str]
    headers: dict[str, str]
    at: float


def _split(query: str) -> list[str]:
    """Comma-separated expressions, not splitting inside braces."""
    parts, depth, current = [], 0, ""
    for ch in query:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class FakeDatadog:
    INTERVAL = 10  # seconds per point

    def __init__(self, api_key: str, app_key: str) -> None:
        self.api_key, self.app_key = api_key, app_key
        self.count_metrics: dict[str, list[Hits]] = {}
        self.distributions: dict[str, list[Durations]] = {}
        self.answers: list[Answer] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeDatadog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, *answers: Answer) -> None:
        self.answers += answers

    def add_hits(self, metric: str, per_second: float, **tags: str) -> None:
        self.count_metrics.setdefault(metric, []).append(Hits(tags, per_second))

    def add_durations(self, metric: str, values: list[float], **tags: str) -> None:
        self.distributions.setdefault(metric, []).append(Durations(tags, values))

    # --- serving -----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        headers = dict(handler.headers.items())
        self.seen.append(Seen(params, headers, time.monotonic()))
        with self._lock:
            injected = self.answers.pop(0) if self.answers else None
        if injected is not None:
            time.sleep(injected.delay)
            status, extra, body = injected.status, injected.headers, injected.body
        else:
            extra = {}
            status, body = self._answer(url.path, params, headers)
        raw = json.dumps(body).encode()
        try:
            handler.send_response(status)
            for k, v in {"Content-Type": "application/json", **extra}.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass

    def _answer(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path != "/api/v1/query":
            return 404, {"errors": ["Not found"]}
        if headers.get("DD-API-KEY") != self.api_key or headers.get("DD-APPLICATION-KEY") != self.app_key:
            return 403, {"errors": ["Forbidden"]}
        try:
            start, end = int(params["from"]), int(params["to"])
            query = params["query"]
        except (KeyError, ValueError):
            return 400, {"errors": ["The value provided for parameter 'from' or 'to' is invalid"]}
        if end <= start:
            return 400, {"errors": ["'to' must be after 'from'"]}
        series: list[dict[str, Any]] = []
        for index, expr in enumerate(_split(query)):
            m = _EXPR_RE.match(expr.strip())
            if not m:
                return 400, {"errors": [f"Error parsing query: unable to parse {expr.strip()[:60]}"]}
            scope = {}
            for tag in (t for t in m["scope"].split(",") if t and t != "*"):
                key, _, value = tag.partition(":")
                scope[key] = value
            series += self._series(index, expr.strip(), m, scope, start, end)
        return 200, {"status": "ok", "res_type": "time_series", "query": query, "series": series,
                     "from_date": start * 1000, "to_date": end * 1000, "message": ""}  # fmt: skip

    def _points(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        t = start
        while t < end:
            yield t, min(t + self.INTERVAL, end)
            t += self.INTERVAL

    def _series(
        self, index: int, expr: str, m: re.Match[str], scope: dict[str, str], start: int, end: int
    ) -> list[dict[str, Any]]:
        def matches(tags: dict[str, str]) -> bool:
            return all(tags.get(k) == v for k, v in scope.items())

        def one(tag_set: list[str], pointlist: list[list[float]]) -> dict[str, Any]:
            return {
                "metric": m["metric"], "display_name": m["metric"], "expression": expr, "aggr": m["agg"],
                "scope": ",".join([f"{k}:{v}" for k, v in scope.items()] + tag_set) or "*",
                "tag_set": tag_set, "pointlist": pointlist, "interval": self.INTERVAL, "length": len(pointlist),
                "start": start * 1000, "end": end * 1000, "query_index": index, "unit": None,
            }  # fmt: skip

        agg = m["agg"]
        if agg.startswith("p"):
            found = [d for d in self.distributions.get(m["metric"], []) if matches(d.tags)]
            if not found:
                return []
            values = [v for d in found for v in d.values]
            value = _percentile(values, float(agg[1:]))
            return [one([], [[t * 1000, value] for t, _ in self._points(start, end)])]
        groups: dict[str, float] = {}
        for hits in self.count_metrics.get(m["metric"], []):
            if matches(hits.tags):
                key = f"{m['by']}:{hits.tags.get(m['by'], 'n/a')}" if m["by"] else ""
                groups[key] = groups.get(key, 0.0) + hits.per_second
        out = []
        for key, per_second in sorted(groups.items()):
            if m["count"]:
                points = [[t * 1000, per_second * (stop - t)] for t, stop in self._points(start, end)]
            else:  # without .as_count(), a count metric reads as a rate per second
                points = [[t * 1000, per_second] for t, _ in self._points(start, end)]
            out.append(one([key] if key else [], points))
        return out
