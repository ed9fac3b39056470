"""Prometheus as Sluice's metric provider (integrations/metrics/interface.py).

Checks are PromQL templates (queries.py) filled with escaped values (promql.render) and asked
as instant queries (client.py); a batch of releases can be primed with one grouped query per
check (batch.py). Response counts are two queries evaluated at `end`: requests `sum by` status
code, and the latency histogram `sum by (le)`, each counting over [start, end] both the counters
that existed before `start` (their increase) and those created inside the span (their whole
value; see `queries.counts_over_span`). With no requests series at all, at most two more queries
say why, when Prometheus can tell: a failing scrape (`up == 0`) or labels that match nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from app.core.config.policy import PolicyConfig
from app.core.models import CheckObservation, Release, ResponseCounts, RouterCounts
from integrations.metrics.interface import CountsSpan
from integrations.prometheus import queries
from integrations.prometheus.batch import NO_DATA, prime_batch
from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.config import PrometheusConfig
from integrations.prometheus.observe import observe_checks, observe_step_requests
from integrations.prometheus.packed_counts import CountsKey, PackedCounts
from integrations.prometheus.promql import escape_string, render, window
from integrations.prometheus.proxy_counts import proxy_counts
from integrations.routers.proxy_view import ProxyQuery

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
MAX_LISTED = 8  # targets or versions named in a reason
MAX_RENDERED = 100_000  # counts queries kept rendered (a few per running release); then start over


class PrometheusProvider:
    def __init__(self, config: PrometheusConfig, url: str | None = None) -> None:
        self.config = config
        self.querier = PrometheusQuerier(url or config.url, timeout=config.timeout)
        self._packed = PackedCounts()
        self._rendered: dict[tuple[str, str, str, float | None], list[str]] = {}

    def observe_checks(
        self, policy: PolicyConfig, metrics: dict[str, Any], release: Release, at: float
    ) -> list[CheckObservation]:
        return observe_checks(policy, self.config, metrics, release, self.querier, at)

    def step_requests(self, release: Release, at: float, since: float) -> float | None:
        return observe_step_requests(self.config, release, self.querier, at, since=since)

    def prime(self, work: list[tuple[Release, PolicyConfig]], metrics: dict[str, Any], at: float) -> int:
        return prime_batch(self.config, metrics, work, self.querier, at)

    def close(self) -> None:
        self.querier.close()

    def proxy_counts(
        self, query: ProxyQuery, versions: list[str], start: float, end: float
    ) -> tuple[dict[str, RouterCounts] | None, str | None]:
        return proxy_counts(self.querier, query, versions, start, end)

    def prime_counts(self, spans: Sequence[tuple[str, str, str, float] | CountsSpan], at: float) -> int:
        """Ask the response counts of these spans (ending at `at`, or at their own end) in one
        request (packed_counts.py), for the batch's ticks; none forgets."""
        wanted: dict[CountsKey, str] = {}
        for span in spans:
            service, version, namespace, start, end = CountsSpan(*span)
            if (end if end is not None else at) > start and (end is None or end <= at):
                try:
                    # A span that ended before `at` is pinned to its end (`@`): its part answers
                    # what its own query evaluated at its end would.
                    wanted[(service, version, namespace, start, end)] = self._counts_query(
                        service, version, namespace, window((end if end is not None else at) - start), end
                    )
                except ValueError:
                    continue  # the tick's own query reports it
        return self._packed.prime(self.querier, wanted, at, self._parse_counts)

    def _counts_query(self, service: str, version: str, namespace: str, win: str, end: float | None = None) -> str:
        """The counts query, rendered once per version and span end: only its window changes from
        tick to tick (a batch renders hundreds of these; `render` is a regex pass with a callback)."""
        key = (service, version, namespace, end)
        pieces = self._rendered.get(key)
        if pieces is None:
            variables = {"service": service, "version": version, "namespace": namespace}
            # Split where the window goes; each piece rendered (validated, escaped) without it.
            template = queries.response_counts_template(self.config, end).split("{window}")
            pieces = [render(piece, variables) for piece in template]
            if len(self._rendered) >= MAX_RENDERED:
                self._rendered.clear()
            self._rendered[key] = pieces
        render("{window}", {"window": win})  # the window checked as render checks it
        return win.join(pieces)

    def response_counts(self, service: str, version: str, namespace: str, start: float, end: float) -> ResponseCounts:
        if end <= start:
            return ResponseCounts(error=f"empty interval: end {end} is not after start {start}")
        primed = self._packed.get(service, version, namespace, start, end)
        if primed is not None:
            return primed
        variables = {"service": service, "version": version, "namespace": namespace, "window": window(end - start)}
        try:
            query = render(queries.response_counts_template(self.config), variables)
        except ValueError as exc:
            return ResponseCounts(error=f"cannot build the query: {exc}")
        rows, error = self.querier.query_vector(query, end)
        if error is not None:
            return ResponseCounts(error=error, backend_failed=True)
        counts = self._parse_counts(rows)
        return counts if counts is not None else ResponseCounts(error=self._why_no_data(variables, end))

    def _parse_counts(self, rows: list[tuple[dict[str, str], float | None]]) -> ResponseCounts | None:
        """The counts query's answer read as counts by class, code and bucket; None without status series."""
        status = self.config.status_label
        codes = [(labels, value) for labels, value in rows if status in labels]
        if not codes:
            return None
        by_class = dict.fromkeys(STATUS_CLASSES, 0.0)
        by_code: dict[str, float] = {}
        for labels, value in codes:
            if value is None:
                continue
            code = labels.get(status, "")
            by_code[code] = by_code.get(code, 0.0) + value
            key = f"{code[:1]}xx"
            if key in by_class:
                by_class[key] += value
        requests = sum(value for _, value in codes if value is not None)
        buckets: dict[float, float] = {}
        for labels, value in rows:
            if "le" not in labels:
                continue
            try:
                bound = float(labels["le"])  # "+Inf" -> inf; "1" and "1.0" are one bound
            except ValueError:
                continue
            if value is not None and not math.isnan(bound):
                buckets[bound] = buckets.get(bound, 0.0) + value
        return ResponseCounts(requests=requests, by_class=by_class, by_code=by_code, buckets=sorted(buckets.items()))

    def _why_no_data(self, variables: dict[str, str], end: float) -> str:
        """Why a version has no requests series over the span, when Prometheus can tell (2 queries at most):
        its scrape target(s) fail (`up == 0`), or no series carries these labels (and which versions do)."""
        cfg, version = self.config, variables["version"]
        targets, error = self.querier.query_vector(render(queries.targets_up_template(cfg), variables), end)
        if error is not None:
            return NO_DATA
        failing = [labels for labels, value in targets if value == 0]
        if failing:
            names = ", ".join(_target_name(labels) for labels in failing[:MAX_LISTED])
            more = f" and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
            return (
                f"no data: Prometheus cannot scrape {version}: up == 0 for its target(s) {names}{more}"
                f" during the span ({len(failing)} of {len(targets)} target(s) failing)"
            )
        scraped = ""
        if targets:
            names = ", ".join(_target_name(labels) for labels, _ in targets[:MAX_LISTED])
            scraped = f"; Prometheus scrapes its target(s) {names} (up == 1) but they exported no requests in it"
        sel = self._shown_selector(variables)
        versions, error = self.querier.query_vector(render(queries.service_versions_template(cfg), variables), end)
        if error is not None:
            return f"no data: no {cfg.requests_metric} series matches {{{sel}}} over the span{scraped}"
        service = f'{cfg.service_label}="{escape_string(variables["service"])}"'
        if not versions:
            return (
                f"no data: no {cfg.requests_metric} series has {service} over the span, for any version"
                f" (check the service label and metric name: service_label {cfg.service_label!r},"
                f" requests_metric {cfg.requests_metric!r}){scraped}"
            )
        shown = [self._shown_labels(labels) for labels, _ in versions]
        listed = ", ".join(sorted(shown)[:MAX_LISTED]) + (" ..." if len(shown) > MAX_LISTED else "")
        return (
            f"no data: no {cfg.requests_metric} series matches {{{sel}}} over the span{scraped};"
            f" Prometheus has {service} with {listed}"
        )

    def _shown_selector(self, variables: dict[str, str]) -> str:
        cfg = self.config
        pairs = [(cfg.service_label, "service"), (cfg.version_label, "version")]
        if cfg.namespace_label:
            pairs.append((cfg.namespace_label, "namespace"))
        return ",".join(f'{label}="{escape_string(variables[name])}"' for label, name in pairs)

    def _shown_labels(self, labels: dict[str, str]) -> str:
        cfg = self.config
        names = [cfg.version_label] + ([cfg.namespace_label] if cfg.namespace_label else [])
        return ",".join(f'{name}="{escape_string(labels[name])}"' for name in names if name in labels)


def _target_name(labels: dict[str, str]) -> str:
    """`job/instance` of a scrape target."""
    return f"{labels.get('job', '?')}/{labels.get('instance', '?')}"
