"""A Gateway's data plane for the talk's story: client traffic split between real version processes
by the weights the cluster's HTTPRoute holds now.

A real Gateway (Envoy behind a Gateway API controller) reads the HTTPRoute from the API server and
the endpoints of the Services it names; this does the same, once a second, from the fake API server:
the rule matching the request path (longest PathPrefix), each backendRef's Service, the Deployments
whose pods that Service selects (their available replicas: a pod that is not ready gets no traffic)
and, per version, the local process that plays those pods. Requests are spread by smooth weighted
round robin, so a 10/90 split is 10/90 to within a request, not only on average.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from tests.support.fake_apiserver import FakeApiServer

GW = ("gateway.networking.k8s.io", "httproutes")


@dataclass
class Answer:
    at: float
    version: str | None  # None: no backend had an endpoint, or the process did not answer
    status: int


def route_rule(route: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The HTTPRoute rule a request for `path` takes: the longest matching PathPrefix."""
    best, best_len = None, -1
    for rule in route.get("spec", {}).get("rules") or []:
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            prefix = (match.get("path") or {}).get("value", "/")
            if path.startswith(prefix) and len(prefix) > best_len:
                best, best_len = rule, len(prefix)
    return best


def version_shares(api: FakeApiServer, ns: str, route_name: str, path: str = "/") -> dict[str, float]:
    """version -> share of requests (0..1) for `path`, as the Gateway would route them now."""
    route = api.get(*GW, ns, route_name)
    rule = route_rule(route, path) if route else None
    weights: dict[str, float] = {}
    for ref in (rule or {}).get("backendRefs") or []:
        weight = int(ref.get("weight", 1))
        service = api.get("", "services", ns, ref["name"]) if ref.get("kind", "Service") == "Service" else None
        endpoints = _endpoints(api, ns, service) if service and weight else {}
        total = sum(endpoints.values())
        for version, ready in endpoints.items():
            weights[version] = (
                weights.get(version, 0.0) + weight * ready / total
            )  # kube-proxy spreads a Service's share over its pods
    total_weight = sum(weights.values())
    return {v: w / total_weight for v, w in weights.items()} if total_weight else {}


def _endpoints(api: FakeApiServer, ns: str, service: dict[str, Any]) -> dict[str, int]:
    """version -> ready pods the Service selects (from each selected Deployment's available replicas)."""
    selector = service.get("spec", {}).get("selector") or {}
    out: dict[str, int] = {}
    for dep in api.list("apps", "deployments", ns):
        labels = dep["spec"]["template"]["metadata"].get("labels") or {}
        ready = int((dep.get("status") or {}).get("availableReplicas") or 0)
        if selector and ready and all(labels.get(k) == v for k, v in selector.items()):
            out[labels["version"]] = out.get(labels["version"], 0) + ready
    return out


class GatewayLoad:
    """`rate` requests a second to `ports[version]`, split as the HTTPRoute says (re-read every second)."""

    def __init__(self, api: FakeApiServer, ns: str, route: str, ports: dict[str, int], rate: float = 50.0):
        self.api, self.ns, self.route, self.ports, self.rate = api, ns, route, ports, rate
        self.answers: list[Answer] = []
        self.shares: dict[str, float] = {}
        self.changes: list[tuple[float, dict[str, float]]] = []  # (when, shares): each time the split changed
        self._credit: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-load", daemon=True)

    def __enter__(self) -> GatewayLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def pick(self) -> str | None:
        """Smooth weighted round robin over the current shares (nginx's algorithm)."""
        if not self.shares:
            return None
        for version, share in self.shares.items():
            self._credit[version] = self._credit.get(version, 0.0) + share
        chosen = max(self.shares, key=lambda v: self._credit[v])
        self._credit[chosen] -= 1.0
        return chosen

    def _run(self) -> None:
        session = requests.Session()
        period, next_at, read_at = 1.0 / self.rate, time.monotonic(), 0.0
        deadline = time.monotonic() + 300  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            if time.monotonic() - read_at >= 1.0:
                read_at = time.monotonic()
                shares = version_shares(self.api, self.ns, self.route)
                if shares != self.shares:
                    self.shares, self._credit = shares, {}
                    self.changes.append((time.time(), shares))
            version = self.pick()
            status = 0
            if version is not None:
                try:
                    status = session.get(f"http://127.0.0.1:{self.ports[version]}/", timeout=5).status_code
                except requests.RequestException:
                    status = 0
            self.answers.append(Answer(time.time(), version, status))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def period(self, shares: dict[str, float]) -> tuple[float, float]:
        """When the Gateway started and stopped splitting traffic as `shares` (the first such period)."""
        for i, (at, seen) in enumerate(self.changes):
            if seen == shares:
                return at, self.changes[i + 1][0] if i + 1 < len(self.changes) else time.time()
        raise AssertionError(f"the Gateway never split traffic as {shares}: {self.changes}")

    def served(self, since: float, until: float | None = None) -> Counter[str]:
        """Requests answered by each version between `since` and `until` (as the clients saw them)."""
        end = until if until is not None else time.time()
        return Counter(a.version for a in list(self.answers) if since <= a.at <= end and a.version and a.status)
