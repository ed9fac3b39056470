"""One Prometheus query per check for a batch of releases, instead of one per release.

The scale benchmark showed a tick's cost to be mostly its HTTP queries to Prometheus. A
worker runs due ticks in batches (workers.tick.run_ticks); before the batch, `prime_batch`
(PrometheusProvider.prime)
asks each built-in check once for every (service, version) in the batch, `sum by` the
release labels, and primes the querier with the answers to the exact per-release queries
the ticks will make. The ticks then run unchanged: a primed query is answered from memory,
anything else (a user's own query, a grouped query that failed) is asked as before.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from app.core.config.policy import PolicyConfig
from app.core.models import Release
from app.core.names import check_label_value
from integrations.prometheus import queries
from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.config import PrometheusConfig
from integrations.prometheus.observe import template_variables
from integrations.prometheus.packed_counts import Row, packed, split
from integrations.prometheus.promql import escape_string, render, window

log = logging.getLogger("sluice.prometheus")
NO_DATA = "no data: the query returned no series"
# A batch's grouped queries (one per check and window) asked in one request; False: one request each.
PACKED = True


def _alternation(values: set[str]) -> str:
    """A PromQL regex matching exactly these (validated) label values."""
    return escape_string("|".join(sorted(re.escape(check_label_value(v, "label value")) for v in values)))


def prime_batch(
    prom: PrometheusConfig,
    metrics: dict[str, Any],
    work: list[tuple[Release, PolicyConfig]],
    querier: PrometheusQuerier,
    at: float,
) -> int:
    """Ask grouped queries for these (running release, its policy) pairs and prime the querier;
    returns how many answers. No work forgets what was primed."""
    keys = queries.group_labels(prom)
    # (grouped template, window) -> [(the single query a tick will make, its release's label values)]
    groups: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
    for release, policy in work:
        if release.state != "running":
            continue
        win = window(policy.query_window)
        variables = template_variables(release, win)
        for check in policy.checks:
            grouped = queries.grouped_check_template(check, prom)
            if grouped is None:
                continue
            single = queries.check_template(check, prom, metrics)
            versions = [release.target_version]
            if check.max_over_stable is not None:
                versions.append(release.source_version)
            for version in versions:
                query = render(single, {**variables, "version": version})
                labels = (release.service, version, release.namespace)[: len(keys)]
                groups.setdefault((grouped, win), []).append((query, labels))

    asked: list[tuple[str, list[tuple[str, tuple[str, ...]]]]] = []  # (grouped query, its wanted)
    for (grouped, win), wanted in groups.items():
        if len({labels for _, labels in wanted}) < 2:
            continue  # one pair: the single query costs the same
        columns = list(zip(*(labels for _, labels in wanted), strict=True))
        text = grouped.replace("{window}", win)
        for placeholder, values in zip(("{services}", "{versions}", "{namespaces}"), columns, strict=False):
            text = text.replace(placeholder, _alternation(set(values)))
        asked.append((text, wanted))
    answers: dict[str, tuple[float | None, str | None]] = {}
    for (_, wanted), series in zip(asked, _ask(querier, [text for text, _ in asked], at), strict=True):
        if series is not None:
            _read(series, wanted, keys, answers)
    querier.prime(answers, at)
    return len(answers)


def _ask(querier: PrometheusQuerier, texts: list[str], at: float) -> list[list[Row] | None]:
    """Each grouped query's series (None: failed), all of them in one request when there are
    several (packed_counts.py `packed`: each part tagged with its place): an HTTP request costs the
    worker more CPU than the few series it returns (benchmarks/profile_tick.py)."""
    if len(texts) > 1 and PACKED:
        rows, error = querier.query_vector(packed(texts), at, form=True)
        parts = split(rows, len(texts)) if error is None else None
        if parts is None:
            log.info("grouped queries failed (%s); ticks will ask one by one", error or "series not tagged")
            return [None] * len(texts)
        return list(parts)
    out: list[list[Row] | None] = []
    for text in texts:
        series, error = querier.query_vector(text, at)
        if error is not None:
            log.info("grouped query failed (%s); ticks will ask one by one", error)
        out.append(series if error is None else None)
    return out


def _read(
    series: list[Row],
    wanted: list[tuple[str, tuple[str, ...]]],
    keys: list[str],
    answers: dict[str, tuple[float | None, str | None]],
) -> None:
    """One grouped query's series as the answers of the single queries it stands for."""
    found: dict[tuple[str, ...], float | None] = {}
    for metric, value in series:
        key = tuple(metric.get(k) or "" for k in keys)
        if "" in key:  # not grouped as asked (a proxy or fake that drops labels): trust nothing
            return
        found[key] = value
    for query, labels in wanted:
        if labels not in found:
            answers[query] = (None, NO_DATA)
        elif found[labels] is not None:
            answers[query] = (found[labels], None)
        # NaN/Inf: not primed; the single query gives its own explanation.
