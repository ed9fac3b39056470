"""`sluice doctor`'s checks of a service's series in Prometheus: which status codes exist (a first 5xx
series is invisible to rate() until its second sample), and whether the latency histogram has the
bucket bounds the policies compare against."""

from __future__ import annotations

import math
from typing import Any

from app.context import Context
from app.core.config.services import ServiceConfig
from app.doctor.findings import Finding, Status
from app.doctor.service_facts import service_policies

SERIES_HISTORY = "1h"


def _selector(provider: Any, svc: str, version: str, namespace: str) -> str:
    from integrations.prometheus import queries
    from integrations.prometheus.promql import render

    return render(queries.selector(provider.config), {"service": svc, "version": version, "namespace": namespace})


def status_series(provider: Any, svc: ServiceConfig, stable: str, ns: str, now: float, name: str) -> list[Finding]:
    cfg = provider.config
    sel = _selector(provider, svc.name, stable, ns)
    query = f"count by ({cfg.status_label}) (last_over_time({cfg.requests_metric}{{{sel}}}[{SERIES_HISTORY}]))"
    series, error = provider.querier.query_vector(query, now)
    if error is not None:
        return [Finding(f"{name} status series", "warn", f"could not list them: {error}")]
    codes = sorted(labels.get(cfg.status_label, "") for labels, _ in series)
    if codes and all(c.startswith("2") for c in codes):
        return [
            Finding(
                f"{name} status series",
                "warn",
                f"only {', '.join(codes)} series exist: a first 5xx creates its series then, and rate()-based "
                "checks (error_rate, your queries) see it only from its second sample",
                f"pre-initialise the counters at start-up, e.g. with prometheus_client "
                f"`{cfg.requests_metric.removesuffix('_total')}.labels(code='500', ...)` (create, do not "
                "increment) for 500/502/503 and common 4xx; the judge's own counts include new series, "
                "your queries do not",
            )
        ]
    return [Finding(f"{name} status series", "pass", f"codes exported: {', '.join(codes) or 'none yet'}")]


def buckets(
    ctx: Context, provider: Any, svc: ServiceConfig, stable: str, ns: str, now: float, name: str
) -> list[Finding]:
    cfg = provider.config
    sel = _selector(provider, svc.name, stable, ns)
    query = f"count by (le) (last_over_time({cfg.latency_histogram}_bucket{{{sel}}}[{SERIES_HISTORY}]))"
    series, error = provider.querier.query_vector(query, now)
    if error is not None:
        return [Finding(f"{name} latency buckets", "warn", f"could not list them: {error}")]
    bounds = set()
    for labels, _ in series:
        try:
            bounds.add(float(labels.get("le", "")))
        except ValueError:
            continue
    unders = sorted(
        {
            (p.name, c.name, c.under)
            for p in service_policies(ctx, svc)
            for c in p.checks
            if c.type == "latency" and c.under
        }
    )
    judge_unders = sorted({p.judge.slow.under for p in service_policies(ctx, svc) if p.judge.slow.under})
    if not bounds:
        status: Status = "fail" if unders else "warn"
        return [
            Finding(
                f"{name} latency buckets",
                status,
                f"no {cfg.latency_histogram}_bucket series for stable {stable}: the slow comparison is off"
                + (" and latency checks have no data" if unders else ""),
                f"export a latency histogram named {cfg.latency_histogram} (or set prometheus.latency_histogram)",
            )
        ]
    shown = ", ".join(_fmt_bound(b) for b in sorted(bounds))
    missing = [(p, c, u) for p, c, u in unders if not any(math.isclose(u, b, rel_tol=1e-9) for b in bounds)]
    missing_judge = [u for u in judge_unders if not any(math.isclose(u, b, rel_tol=1e-9) for b in bounds)]
    if missing or missing_judge:
        what = [f"check {c!r} of policy {p!r} (under {_fmt_bound(u)})" for p, c, u in missing]
        what += [f"judge.slow.under {_fmt_bound(u)}" for u in missing_judge]
        return [
            Finding(
                f"{name} latency buckets",
                "fail",
                f"{'; '.join(what)}: not a bucket bound of {cfg.latency_histogram} (bounds: {shown})",
                "use a bound the histogram has, or add that bucket to the service's histogram",
            )
        ]
    return [Finding(f"{name} latency buckets", "pass", f"bounds {shown}")]


def _fmt_bound(b: float) -> str:
    return "+Inf" if math.isinf(b) else f"{b:g}s"
