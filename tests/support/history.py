"""Two weeks of one service's traffic with a few version changes (one bad), for backtests: hard
switches from one version to the next, one sample a minute (promtool-imported, tests/support/prom_data.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.prom_data import Traffic

DAY = 86400
STEP = 60
GOOD_CODES = {"200": 594, "500": 6}  # 1% errors, 600 requests a minute
BAD_CODES = {"200": 480, "500": 120}  # 20% errors
LATENCIES = [(0.05, 570), (0.3, 30)]


@dataclass(frozen=True)
class Era:
    version: str
    start: int  # first sample (the version's first traffic)
    end: int  # last sample
    bad: bool = False


def two_weeks(end: int, service: str = "shop", namespace: str = "prod") -> tuple[list[Traffic], list[Era]]:
    """1.0.0 → 1.1.0 (day 3) → 1.2.0 (day 7, 20% errors, replaced after 40 min) → 1.2.1 → 1.3.0 (day 11)."""
    start = end - 14 * DAY
    switches = [
        ("1.0.0", start, False),
        ("1.1.0", start + 3 * DAY, False),
        ("1.2.0", start + 7 * DAY, True),
        ("1.2.1", start + 7 * DAY + 40 * 60, False),
        ("1.3.0", start + 11 * DAY, False),
    ]
    eras = [
        Era(v, s, (switches[i + 1][1] - STEP) if i + 1 < len(switches) else end, bad)
        for i, (v, s, bad) in enumerate(switches)
    ]
    traffic = [
        Traffic(
            service,
            e.version,
            codes=BAD_CODES if e.bad else GOOD_CODES,
            latencies=LATENCIES,
            namespace=namespace,
            born_at=None if e.start == start else e.start,
            ends_at=e.end,
        )
        for e in eras
    ]
    return traffic, eras


LEAN_BUCKETS = (0.1, 0.5, float("inf"))


def lean_openmetrics(traffic: list[Traffic], start: int, end: int, step: int = STEP) -> str:
    """As prom_data.openmetrics, with three latency buckets and no `_sum`: two weeks of samples a
    minute stay small enough for promtool to import in seconds."""
    times = range(start, end + 1, step)
    lines = ["# TYPE http_requests counter"]
    for t in traffic:
        for code, n in t.codes.items():
            lines += [f'http_requests_total{{{t.labels()},code="{code}"}} {v} {ts}' for ts, v in t.samples(n, times)]
    lines.append("# TYPE http_request_duration_seconds histogram")
    for t in traffic:
        for bound in LEAN_BUCKETS:
            n = sum(c for v, c in t.latencies if v <= bound)
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines += [
                f'http_request_duration_seconds_bucket{{{t.labels()},le="{le}"}} {v} {ts}'
                for ts, v in t.samples(n, times)
            ]
        total = sum(c for _, c in t.latencies)
        lines += [f"http_request_duration_seconds_count{{{t.labels()}}} {v} {ts}" for ts, v in t.samples(total, times)]
    return "\n".join(lines) + "\n# EOF\n"
