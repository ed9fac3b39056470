"""The proxy's answers to each version over a span, from Prometheus: a `ProxyQuery`
(integrations/routers/proxy_view.py) turned into `RouterCounts`, as HAProxy's router gives them.

One query, evaluated at the span's end: the proxy counter's series `sum by` the query's labels,
counted over [start, end] as the application's counts are (`queries.counts_over_span`: a series
created inside the span, e.g. the candidate's first 503, counts whole). Prometheus keeps the
counters' history, so the span's start is the mark: no state is kept between ticks.
"""

from __future__ import annotations

from app.core.models import RouterCounts
from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.promql import escape_string, render, window
from integrations.prometheus.queries import counts_over_span
from integrations.routers.proxy_view import ProxyQuery

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


def proxy_template(q: ProxyQuery) -> str:
    """The PromQL (with a `{window}` placeholder). Names were checked by ProxyQuery; every value is
    escaped as the inside of a PromQL string, so none can change the query's shape."""
    matchers = ",".join(f'{label}{op}"{escape_string(value)}"' for label, op, value in q.matchers)
    return counts_over_span(f"{q.metric}{{{matchers}}}", ", ".join(q.by))


def count_rows(
    q: ProxyQuery, rows: list[tuple[dict[str, str], float | None]], versions: list[str]
) -> dict[str, RouterCounts]:
    """Each version's answers: by status class the ones the application gave, apart the ones the
    proxy made up (the judge adds them, as HAProxy's)."""
    totals = {v: {"requests": 0.0, "proxy_errors": 0.0, **dict.fromkeys(STATUS_CLASSES, 0.0)} for v in versions}
    for stored, value in rows:
        labels = q.as_exported(stored)
        version = q.version_of(labels)
        if version not in totals or value is None:
            continue
        seen = totals[version]
        seen["requests"] += value
        key = "proxy_errors" if q.made_by_proxy(labels) else f"{labels.get(q.code_label, '')[:1]}xx"
        if key in seen:
            seen[key] += value
    return {
        v: RouterCounts(
            requests=t["requests"],
            by_class={c: t[c] for c in STATUS_CLASSES},
            proxy_errors=t["proxy_errors"],
            source=q.source,
        )
        for v, t in totals.items()
    }


def proxy_counts(
    querier: PrometheusQuerier, q: ProxyQuery, versions: list[str], start: float, end: float
) -> tuple[dict[str, RouterCounts] | None, str | None]:
    """(counts per version, None), or (None, why not): Prometheus failed, or it has no series of
    the proxy's for any of these versions (the proxy does not export them, or under other labels)."""
    if end <= start:
        return None, f"empty interval: end {end} is not after start {start}"
    query = render(proxy_template(q), {"window": window(end - start)})
    rows, error = querier.query_vector(query, end)
    if error is not None:
        return None, error
    if not any(q.version_of(q.as_exported(labels)) in versions for labels, _ in rows):
        shown = ",".join(f'{label}{op}"{escape_string(value)}"' for label, op, value in q.matchers)
        return None, f"no {q.metric}{{{shown}}} series for {', '.join(versions)} over the span"
    return count_rows(q, rows, versions), None
