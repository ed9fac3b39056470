"""Prometheus as Sluice's metric provider (integrations/metrics/interface.py).

Checks are PromQL templates (queries.py) filled with escaped values (promql.render) and asked
as instant queries (client.py); a batch of releases can be primed with one grouped query per
check (batch.py). Response counts are two queries: requests `sum by` status code, and the
latency histogram `sum by (le)`, each the `increase` over [start, end] evaluated at `end`.
"""

from __future__ import annotations

import math
from typing import Any

from app.config.policy import PolicyConfig
from app.models import CheckObservation, Release, ResponseCounts
from integrations.prometheus import queries
from integrations.prometheus.batch import NO_DATA, prime_batch
from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.config import PrometheusConfig
from integrations.prometheus.observe import observe_checks, observe_step_requests
from integrations.prometheus.promql import render, window

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


class PrometheusProvider:
    def __init__(self, config: PrometheusConfig, url: str | None = None) -> None:
        self.config = config
        self.querier = PrometheusQuerier(url or config.url, timeout=config.timeout)

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

    def response_counts(self, service: str, version: str, namespace: str, start: float, end: float) -> ResponseCounts:
        if end <= start:
            return ResponseCounts(error=f"empty interval: end {end} is not after start {start}")
        variables = {"service": service, "version": version, "namespace": namespace, "window": window(end - start)}
        try:
            codes_query = render(queries.status_counts_template(self.config), variables)
            buckets_query = render(queries.bucket_counts_template(self.config), variables)
        except ValueError as exc:
            return ResponseCounts(error=f"cannot build the query: {exc}")
        codes, error = self.querier.query_vector(codes_query, end)
        if error is not None:
            return ResponseCounts(error=error)
        if not codes:
            return ResponseCounts(error=NO_DATA)
        by_class = dict.fromkeys(STATUS_CLASSES, 0.0)
        for labels, value in codes:
            code = labels.get(self.config.status_label, "")
            key = f"{code[:1]}xx"
            if value is not None and key in by_class:
                by_class[key] += value
        requests = sum(value for _, value in codes if value is not None)
        series, error = self.querier.query_vector(buckets_query, end)
        buckets: dict[float, float] = {}
        for labels, value in series:
            try:
                bound = float(labels.get("le", ""))  # "+Inf" -> inf; "1" and "1.0" are one bound
            except ValueError:
                continue
            if value is not None and not math.isnan(bound):
                buckets[bound] = buckets.get(bound, 0.0) + value
        return ResponseCounts(
            requests=requests,
            by_class=by_class,
            buckets=sorted(buckets.items()),
            error=f"latency buckets: {error}" if error else None,
        )
