"""Deterministic request/latency history as OpenMetrics text, plus the values it should yield.

Every version serves a fixed number of requests per scrape interval, so its counters grow
linearly and the true rate over any window is known exactly; the tests compare what
Prometheus computes with what `expected_*` computes from the same `Traffic` specs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from app.cli.demo.stack import Process, require_binary, start_prometheus

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def python_le(bound: float) -> str:
    """`le` as prometheus_client writes it (1.0, 5.0, 0.5, +Inf)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def go_le(bound: float) -> str:
    """`le` as client_golang writes it (1, 5, 0.5, +Inf)."""
    return "+Inf" if bound == float("inf") else f"{bound:g}"


@dataclass(frozen=True)
class Traffic:
    """What one version serves per interval: {code: requests} and [(latency seconds, requests)].

    By default every series exists from the data's start (value 0 there) to its end. A process
    that starts later (`born_at`, a timestamp) creates all its series then; `code_born_at` creates
    one code's series later (the candidate's first 5xx). A created series' first sample already
    holds one interval's requests, as an exporter that creates a labelled counter on its first
    increment shows it. `reset_at`: the process restarts, every counter starts again from 0 and
    the sample there holds one interval's requests. `ends_at`: the series stop (the process is gone).
    """

    app: str
    version: str
    codes: dict[str, int]
    latencies: list[tuple[float, int]]
    namespace: str = "prod"
    le_style: str = "python"
    extra: dict[str, str] = field(default_factory=dict)
    born_at: int | None = None
    code_born_at: dict[str, int] = field(default_factory=dict)
    reset_at: int | None = None
    ends_at: int | None = None

    @property
    def per_interval(self) -> int:
        return sum(self.codes.values())

    def labels(self) -> str:
        pairs = {"app": self.app, "version": self.version, "namespace": self.namespace, **self.extra}
        return ",".join(f'{k}="{v}"' for k, v in pairs.items())

    def samples(self, n: float, times: range, code: str | None = None) -> list[tuple[int, float]]:
        """(timestamp, value) of a series that grows by `n` per interval."""
        born = self.code_born_at.get(code, self.born_at) if code is not None else self.born_at
        out: list[tuple[int, float]] = []
        for ts in times:
            if (born is not None and ts < born) or (self.ends_at is not None and ts > self.ends_at):
                continue
            if self.reset_at is not None and ts >= self.reset_at and (born is None or born < self.reset_at):
                value = n * (1 + (ts - self.reset_at) // times.step)
            elif born is not None:
                value = n * (1 + (ts - born) // times.step)
            else:
                value = n * ((ts - times.start) // times.step)
            out.append((ts, value))
        return out


@dataclass(frozen=True)
class Target:
    """A scrape target's `up` series: `value` (1 or 0) at every sample from `since` to `until`."""

    labels: dict[str, str]
    value: int
    since: int
    until: int


def openmetrics(traffic: list[Traffic], start: int, end: int, step: int, targets: tuple[Target, ...] = ()) -> str:
    """OpenMetrics text with one sample per `step` seconds from `start` to `end` inclusive."""
    times = range(start, end + 1, step)
    lines = ["# TYPE http_requests counter"]
    for t in traffic:
        for code, n in t.codes.items():
            lines += [
                f'http_requests_total{{{t.labels()},code="{code}"}} {v} {ts}' for ts, v in t.samples(n, times, code)
            ]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for t in traffic:
        fmt = python_le if t.le_style == "python" else go_le
        for bound in (*BUCKETS, float("inf")):
            n = sum(c for v, c in t.latencies if v <= bound)
            lines += [
                f'http_request_duration_seconds_bucket{{{t.labels()},le="{fmt(bound)}"}} {v} {ts}'
                for ts, v in t.samples(n, times)
            ]
        total = sum(c for _, c in t.latencies)
        total_sum = sum(v * c for v, c in t.latencies)
        lines += [f"http_request_duration_seconds_count{{{t.labels()}}} {v} {ts}" for ts, v in t.samples(total, times)]
        lines += [
            f"http_request_duration_seconds_sum{{{t.labels()}}} {v:.6f} {ts}" for ts, v in t.samples(total_sum, times)
        ]
    if targets:
        lines.append("# TYPE up gauge")
        for target in targets:
            labels = ",".join(f'{k}="{v}"' for k, v in target.labels.items())
            lines += [f"up{{{labels}}} {target.value} {ts}" for ts in times if target.since <= ts <= target.until]
    return "\n".join(lines) + "\n# EOF\n"


def serve_history(workdir: Path, text: str, import_timeout: float = 60) -> tuple[Process, str]:
    """A real Prometheus serving the OpenMetrics `text` (imported as blocks with promtool)."""
    require_binary("promtool", "prometheus")
    data_file = workdir / "history.om"
    data_file.write_text(text)
    storage = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(data_file), str(storage)],
        check=True,
        capture_output=True,
        timeout=import_timeout,
    )
    return start_prometheus(workdir, storage=storage, extra_flags=["--storage.tsdb.retention.time=100y"])


# --- the truth, computed from the specs rather than from Prometheus -------------------------------


def expected_error_rate(t: Traffic) -> float:
    return sum(n for code, n in t.codes.items() if code.startswith("5")) / t.per_interval


def expected_requests_per_minute(t: Traffic, step: int) -> float:
    return t.per_interval / step * 60


def expected_fraction_under(t: Traffic, under: float) -> float:
    return sum(c for v, c in t.latencies if v <= under) / sum(c for _, c in t.latencies)


def expected_requests_between(t: Traffic, seconds: float, step: int) -> float:
    return t.per_interval / step * seconds
