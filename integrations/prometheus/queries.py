"""PromQL templates for the built-in checks.

These functions only build *templates* (text with `{service}`, `{version}`, `{namespace}`,
`{window}` placeholders); every value reaches PromQL through `promql.render`, which
validates and escapes it. Metric and label names come from `PrometheusConfig`, whose
fields are already restricted to PromQL identifier syntax.

About `le`: Prometheus 2.x stores a histogram bucket's `le` label exactly as the exporter
wrote it. Verified against Prometheus 2.42 and promtool: the Python client
(prometheus_client, which the demo service uses) writes integer bounds as `le="1.0"`,
`le="5.0"`, Go's client_golang writes `le="1"`, and promtool's OpenMetrics import keeps
whichever spelling the file has. (Prometheus 3 normalises to the `1.0` form on ingestion.)
So an integer bound is matched with `le=~"1|1[.]0"`; other bounds use the shortest
round-trip decimal, which is what both clients write (0.5 -> "0.5", 0.025 -> "0.025").
"""

from __future__ import annotations

from app.core.config.policy import CheckConfig
from integrations.prometheus.config import MetricConfig, PrometheusConfig


def selector(prom: PrometheusConfig) -> str:
    """Label matchers for one version of one service: `app="{service}",version="{version}"[,ns=...]`."""
    parts = [f'{prom.service_label}="{{service}}"', f'{prom.version_label}="{{version}}"']
    if prom.namespace_label:
        parts.append(f'{prom.namespace_label}="{{namespace}}"')
    return ",".join(parts)


def le_matcher(under: float) -> str:
    """The `le` matcher for the bucket bound `under` seconds, matching every spelling exporters use."""
    bound = float(f"{under:.9g}")  # drop float noise from duration parsing (e.g. 0.30000000000000004)
    if bound.is_integer() and abs(bound) < 1e15:
        whole = str(int(bound))
        return f'le=~"{whole}|{whole}[.]0"'
    return f'le="{bound!r}"'


def latency_template(prom: PrometheusConfig, under: float) -> str:
    """Fraction of responses faster than `under` seconds (0..1), from the latency histogram."""
    h, sel = prom.latency_histogram, selector(prom)
    return f"sum(rate({h}_bucket{{{sel},{le_matcher(under)}}}[{{window}}])) / sum(rate({h}_count{{{sel}}}[{{window}}]))"


def request_rate_template(prom: PrometheusConfig) -> str:
    """Requests per minute."""
    return f"sum(rate({prom.requests_metric}{{{selector(prom)}}}[{{window}}])) * 60"


def error_rate_template(prom: PrometheusConfig) -> str:
    """Fraction of 5xx responses (0..1).

    `or vector(0)` makes a version that has served requests but never a 5xx read 0 rather
    than no data (there is no 5xx series at all then); with no requests it stays no data.
    """
    r, sel = prom.requests_metric, selector(prom)
    return (
        f'(sum(rate({r}{{{sel},{prom.status_label}=~"5.."}}[{{window}}])) or vector(0))'
        f" / sum(rate({r}{{{sel}}}[{{window}}]))"
    )


def step_requests_template(prom: PrometheusConfig) -> str:
    """Requests served by one version over `{window}` (the time since the step started)."""
    return f"sum(increase({prom.requests_metric}{{{selector(prom)}}}[{{window}}]))"


# --- response counts (for a judge that compares versions on counts) --------------------------------

# Prometheus's default lookback delta: an instant selector finds a series whose last sample is
# at most this old. "Existed before the span" means a sample within this much before its start.
LOOKBACK = "5m"


def counts_over_span(series: str, by: str, at: float | None = None) -> str:
    """`sum by (<by>)` of what the counters in `series` counted over the span `{window}` ending at
    the evaluation time, including counters that were created inside the span.

    `increase()` needs two samples and cannot count a counter's first one: a candidate's first
    5xx creates the `code="500"` series with value 1, and `increase()` reads that as 0 (or as
    nothing, with a single sample). So series split in two, by whether they had a sample in the
    `LOOKBACK` before the span's start:
    - they did: `increase()` over the span (which follows counter resets, e.g. a crash loop);
    - they did not (born in the span): their whole value, the last one in the span (counters
      start at 0 when a process creates them).
    `present_over_time(...[5m] offset R)` rather than `series offset R`: when a target's scrape
    fails, Prometheus marks its series stale, and an instant selector then misses a series that
    was there a second before; a candidate that was down at the span's start would be counted
    with its whole history (verified on Prometheus 2.42 with a live target). `last_over_time`
    rather than an instant selector, for the same reason at the span's end. `and`/`unless`/`or`
    match on all labels but `__name__`, so each series lands on exactly one side
    (tests/integrations/prometheus/test_response_counts.py). Limits: a series born in the span that
    also reset in it counts from its last restart only (a lower bound); a series absent for more
    than `LOOKBACK` before the span that comes back without a reset counts its whole value.

    `at`: the span ends at this time whenever the query is evaluated (the `@` modifier on every
    selector), so that a span ending in the past can be asked with a batch evaluated now.
    """
    pin = "" if at is None else f" @ {at:.3f}"  # our own float: no caller's text reaches the query
    existed = f"present_over_time({series}[{LOOKBACK}]{pin} offset {{window}})"
    return (
        f"sum by ({by}) ((increase({series}[{{window}}]{pin}) and {existed})"
        f" or (last_over_time({series}[{{window}}]{pin}) unless {existed}))"
    )


def status_counts_template(prom: PrometheusConfig, at: float | None = None) -> str:
    """Requests served by one version over `{window}`, one series per status code."""
    return counts_over_span(f"{prom.requests_metric}{{{selector(prom)}}}", prom.status_label, at)


def bucket_counts_template(prom: PrometheusConfig, at: float | None = None) -> str:
    """Cumulative latency-histogram counts of one version over `{window}`, one series per bucket bound."""
    return counts_over_span(f"{prom.latency_histogram}_bucket{{{selector(prom)}}}", "le", at)


def response_counts_template(prom: PrometheusConfig, at: float | None = None) -> str:
    """Status counts and bucket counts in one query (one round trip per version and tick): the two
    sides carry different labels (`code` / `le`), so `or` keeps every series of both. `at`: the
    span ends then, whenever the query is evaluated (`counts_over_span`)."""
    return f"({status_counts_template(prom, at)}) or ({bucket_counts_template(prom, at)})"


# How far back to look for the scrape targets that exported a version's series.
TARGET_HISTORY = "1h"


def targets_up_template(prom: PrometheusConfig) -> str:
    """The lowest `up` over `{window}` of each scrape target of one version, `by (job, instance)`.

    Targets are found two ways: by the release labels on the target itself (`up{app=..,version=..}`,
    as Kubernetes service discovery usually relabels them), or as the targets that exported the
    version's requests counter in the last `TARGET_HISTORY` (for targets that carry no such labels).
    """
    sel = selector(prom)
    up = f"min_over_time(up{{{sel}}}[{{window}}])"
    exported = f"group by (job, instance) (last_over_time({prom.requests_metric}{{{sel}}}[{TARGET_HISTORY}]))"
    return (
        f"min by (job, instance) ({up})"
        f" or min by (job, instance) (min_over_time(up[{{window}}]) and on (job, instance) {exported})"
    )


def service_versions_template(prom: PrometheusConfig) -> str:
    """The versions (and namespaces) that have requests series for a service over `{window}`."""
    labels = [prom.version_label] + ([prom.namespace_label] if prom.namespace_label else [])
    return (
        f"count by ({', '.join(labels)})"
        f' (last_over_time({prom.requests_metric}{{{prom.service_label}="{{service}}"}}[{{window}}]))'
    )


def check_template(check: CheckConfig, prom: PrometheusConfig, metrics: dict[str, MetricConfig]) -> str:
    """The template a check measures. Raises ValueError for a check that cannot be built."""
    if check.type == "latency":
        if check.under is None:
            raise ValueError(f"latency check {check.name!r} has no `under` bound")
        return latency_template(prom, check.under)
    if check.type == "request_rate":
        return request_rate_template(prom)
    if check.type == "error_rate":
        return error_rate_template(prom)
    metric = metrics.get(check.metric or "")
    if metric is None:
        raise ValueError(f"check {check.name!r} uses metric {check.metric!r}, which is not in `metrics`")
    return metric.query


# --- one query for many releases -------------------------------------------------------------------


def group_labels(prom: PrometheusConfig) -> list[str]:
    """The labels that tell one release's series from another's in a grouped query."""
    labels = [prom.service_label, prom.version_label]
    if prom.namespace_label:
        labels.append(prom.namespace_label)
    return labels


def grouped_check_template(check: CheckConfig, prom: PrometheusConfig) -> str | None:
    """The built-in check for many (service, version) pairs at once, `sum by` the release labels,
    with `{services}`, `{versions}`, `{namespaces}` regex alternations and `{window}`; None for a
    check that cannot be grouped (a user's own query). Each row equals what `check_template`
    gives for that one pair: an absent row is no data, as the single query's empty result is."""
    names = ("{services}", "{versions}", "{namespaces}")
    sel = ",".join(f'{label}=~"{names[i]}"' for i, label in enumerate(group_labels(prom)))
    by = f"sum by ({', '.join(group_labels(prom))})"
    r = prom.requests_metric
    if check.type == "latency" and check.under is not None:
        h = prom.latency_histogram
        le = le_matcher(check.under)
        return f"{by}(rate({h}_bucket{{{sel},{le}}}[{{window}}])) / {by}(rate({h}_count{{{sel}}}[{{window}}]))"
    if check.type == "request_rate":
        return f"{by}(rate({r}{{{sel}}}[{{window}}])) * 60"
    if check.type == "error_rate":
        # `or (all * 0)` instead of `or vector(0)`: a pair with requests but no 5xx reads 0.
        return (
            f'({by}(rate({r}{{{sel},{prom.status_label}=~"5.."}}[{{window}}]))'
            f" or ({by}(rate({r}{{{sel}}}[{{window}}])) * 0))"
            f" / {by}(rate({r}{{{sel}}}[{{window}}]))"
        )
    return None
