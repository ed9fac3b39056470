"""Deterministic request/latency history as OpenMetrics text, plus the values it should yield.

Every version serves a fixed number of requests per scrape interval, so its counters grow
linearly and the true rate over any window is known exactly; the tests compare what
Prometheus computes with what `expected_*` computes from the same `Traffic` specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def python_le(bound: float) -> str:
    """`le` as prometheus_client writes it (1.0, 5.0, 0.5, +Inf)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def go_le(bound: float) -> str:
    """`le` as client_golang writes it (1, 5, 0.5, +Inf)."""
    return "+Inf" if bound == float("inf") else f"{bound:g}"


@dataclass(frozen=True)
class Traffic:
    """What one version serves per interval: {code: requests} and [(latency seconds, requests)]."""

    app: str
    version: str
    codes: dict[str, int]
    latencies: list[tuple[float, int]]
    namespace: str = "prod"
    le_style: str = "python"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def per_interval(self) -> int:
        return sum(self.codes.values())

    def labels(self) -> str:
        pairs = {"app": self.app, "version": self.version, "namespace": self.namespace, **self.extra}
        return ",".join(f'{k}="{v}"' for k, v in pairs.items())


def openmetrics(traffic: list[Traffic], start: int, end: int, step: int) -> str:
    """OpenMetrics text with one sample per `step` seconds from `start` to `end` inclusive."""
    times = range(start, end + 1, step)
    lines = ["# TYPE http_requests counter"]
    for t in traffic:
        for code, n in t.codes.items():
            lines += [f'http_requests_total{{{t.labels()},code="{code}"}} {i * n} {ts}' for i, ts in enumerate(times)]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for t in traffic:
        fmt = python_le if t.le_style == "python" else go_le
        for bound in (*BUCKETS, float("inf")):
            n = sum(c for v, c in t.latencies if v <= bound)
            lines += [
                f'http_request_duration_seconds_bucket{{{t.labels()},le="{fmt(bound)}"}} {i * n} {ts}'
                for i, ts in enumerate(times)
            ]
        total = sum(c for _, c in t.latencies)
        total_sum = sum(v * c for v, c in t.latencies)
        lines += [f"http_request_duration_seconds_count{{{t.labels()}}} {i * total} {ts}" for i, ts in enumerate(times)]
        lines += [
            f"http_request_duration_seconds_sum{{{t.labels()}}} {i * total_sum:.6f} {ts}" for i, ts in enumerate(times)
        ]
    return "\n".join(lines) + "\n# EOF\n"


# --- the truth, computed from the specs rather than from Prometheus -------------------------------


def expected_error_rate(t: Traffic) -> float:
    return sum(n for code, n in t.codes.items() if code.startswith("5")) / t.per_interval


def expected_requests_per_minute(t: Traffic, step: int) -> float:
    return t.per_interval / step * 60


def expected_fraction_under(t: Traffic, under: float) -> float:
    return sum(c for v, c in t.latencies if v <= under) / sum(c for _, c in t.latencies)


def expected_requests_between(t: Traffic, seconds: float, step: int) -> float:
    return t.per_interval / step * seconds
