"""One version's counts turned into samples for the judge: (bad, requests) by kind of bad outcome.

Pure (no I/O). Errors and 4xx come from the router when it reports counts (what users saw), else
from the metrics backend; slow responses from the latency histogram, over a bound set relative to
stable. See docs/judging.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.core.models import VersionCounts

# Below this many stable requests in the span, stable's live counts are too few to be the reference
# (e.g. at the 100% step): the judge compares with stable's counts from the steps before.
MIN_LIVE_REFERENCE = 50
# Without `judge.slow.under`: the smallest bucket bound that at most this share of stable's
# responses exceed is the "slow" bound (relative to stable; a latency check's `under` is an SLO).
# Just above the body of stable's latencies: at 10 % the bound fell inside the body (10 ms for a 5 ms
# service), where machine noise moved both shares by points and a +5-point tail of 1 s responses was
# diluted to +0.7 (the scenario suite's bad-slow-tail was promoted once). At 2 % it could land past
# a 2 % tail, on a bound the regression's slow responses do not cross (the simulation's +5 points
# slow were then caught in 45 % of releases instead of 100 %).
AUTO_SLOW_SHARE = 0.05


@dataclass(frozen=True)
class Sample:
    bad: float
    n: float
    source: str  # "HAProxy" (router), "Prometheus" (metrics), ...


def _metrics_ok(v: VersionCounts) -> bool:
    return v.metrics is not None and v.metrics.requests is not None


def errors_sample(v: VersionCounts, use_router: bool, client_timeout: float | None = None) -> Sample | None:
    """5xx and proxy errors, and with `client_timeout` the responses its clients gave up on."""
    sample = _server_errors(v, use_router)
    late = timed_out(v, client_timeout)
    if sample is None or not late:
        return sample
    # Counted by the histogram, beside the status codes: a response that was also a 5xx counts
    # twice, so the share is capped at every request (the same for both versions).
    return Sample(min(sample.bad + late, sample.n), sample.n, sample.source)


def _server_errors(v: VersionCounts, use_router: bool) -> Sample | None:
    if use_router and v.router is not None:
        r = v.router
        return Sample(r.by_class.get("5xx", 0.0) + r.proxy_errors, r.requests, r.source)
    if _metrics_ok(v):
        m = v.metrics
        assert m is not None and m.requests is not None
        return Sample(min(m.by_class.get("5xx", 0.0), m.requests), m.requests, "Prometheus")
    return None


def timed_out(v: VersionCounts, client_timeout: float | None) -> float:
    """Responses surely slower than `client_timeout`: those above the smallest finite bucket bound
    at or over it (none if no bound is; never an estimate that could blame a fast response)."""
    if client_timeout is None or v.metrics is None or not v.metrics.buckets:
        return 0.0
    total = v.metrics.buckets[-1][1]
    for bound, count in v.metrics.buckets:
        if math.isfinite(bound) and bound >= client_timeout * (1 - 1e-9):
            return max(total - count, 0.0)
    return 0.0


def client_errors_sample(v: VersionCounts, use_router: bool, ignore: list[int]) -> Sample | None:
    m = v.metrics
    if ignore and m is not None and m.requests is not None and m.by_code:
        bad = sum(c for code, c in m.by_code.items() if code.startswith("4") and _code(code) not in ignore)
        return Sample(min(bad, m.requests), m.requests, "Prometheus")
    if use_router and v.router is not None:
        r = v.router
        return Sample(r.by_class.get("4xx", 0.0), r.requests, r.source)
    if m is not None and m.requests is not None:
        return Sample(min(m.by_class.get("4xx", 0.0), m.requests), m.requests, "Prometheus")
    return None


def _code(code: str) -> int:
    try:
        return int(code)
    except ValueError:
        return -1


def slow_sample(v: VersionCounts, under: float | None) -> Sample | None:
    """Responses over `under` seconds (including those over the largest bucket) of those the
    histogram counted. None without a histogram."""
    if under is None or v.metrics is None or not v.metrics.buckets:
        return None
    buckets = v.metrics.buckets
    total = buckets[-1][1]
    within = 0.0
    for bound, count in buckets:
        if bound <= under * (1 + 1e-9):
            within = count
    return Sample(max(total - within, 0.0), total, "Prometheus")


def auto_slow_bound(v: VersionCounts) -> float | None:
    """The smallest finite bucket bound that at most AUTO_SLOW_SHARE of `v`'s responses exceed."""
    if v.metrics is None or not v.metrics.buckets:
        return None
    total = v.metrics.buckets[-1][1]
    if total < MIN_LIVE_REFERENCE:
        return None
    finite = [(bound, count) for bound, count in v.metrics.buckets if math.isfinite(bound)]
    for bound, count in finite:
        if total - count <= AUTO_SLOW_SHARE * total:
            return bound
    # A heavy tail past the largest finite bound: "over the largest bound" is still a fair
    # comparison of the two versions. With only +Inf there is no bound: no_histogram() says so.
    return finite[-1][0] if finite else None


def no_histogram(v: VersionCounts) -> bool:
    """The metrics backend answered (requests counted) and the version has no latency histogram
    with a finite bound."""
    m = v.metrics
    return m is not None and m.requests is not None and not any(math.isfinite(b) for b, _ in m.buckets)


def backend_failed(v: VersionCounts | None) -> str | None:
    """Why the metrics backend could not give a version's counts (unreachable, too slow), or None:
    missing data, which `on_no_data` rules, not missing traffic, which holds for evidence."""
    m = v.metrics if v is not None else None
    return (m.error or "the metrics backend did not answer") if m is not None and m.backend_failed else None


def why_none(v: VersionCounts) -> str:
    """Why a version has no counts, as the metrics backend explained it."""
    if v.metrics is not None and v.metrics.error:
        return v.metrics.error
    return "no counts from the metrics backend or the router"
