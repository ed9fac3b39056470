"""FakePrometheus (tests/support/fakes.py) answers the provider's response-counts queries as programmed."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from integrations.prometheus.config import PrometheusConfig
from integrations.prometheus.provider import PrometheusProvider
from tests.support.fakes import FakePrometheus, running


@pytest.fixture()
def fake() -> Iterator[FakePrometheus]:
    with running(FakePrometheus()) as prom:
        yield prom


def provider_for(fake: FakePrometheus, **config: str) -> PrometheusProvider:
    return PrometheusProvider(PrometheusConfig(url=fake.url, timeout=2.0, **config))  # type: ignore[arg-type]


def test_programmed_counts_and_buckets(fake: FakePrometheus) -> None:
    fake.counts["1.1.0"] = {"200": 970, "404": 10, "500": 20}
    fake.buckets["1.1.0"] = {0.1: 900, 0.5: 990, math.inf: 1000}
    fake.counts["1.0.0"] = {"200": 5000}
    provider = provider_for(fake)
    try:
        candidate = provider.response_counts("web", "1.1.0", "prod", 0.0, 60.0)
        stable = provider.response_counts("web", "1.0.0", "prod", 0.0, 60.0)
    finally:
        provider.close()
    assert candidate.error is None and candidate.requests == 1000
    assert candidate.by_code == {"200": 970, "404": 10, "500": 20}
    assert candidate.by_class == {"2xx": 970, "3xx": 0, "4xx": 10, "5xx": 20}
    assert candidate.buckets == [(0.1, 900), (0.5, 990), (math.inf, 1000)]
    assert stable.requests == 5000 and stable.buckets == [(math.inf, 5000)]  # no buckets programmed: +Inf only


def test_scalar_programming_is_not_guessed_into_counts(fake: FakePrometheus) -> None:
    fake.values = {"1.1.0": 0.3}  # an error rate
    fake.rules = [('increase(&&version="1.1.0"', 150.0)]  # a request count for step_requests
    provider = provider_for(fake)
    try:
        counts = provider.response_counts("web", "1.1.0", "prod", 0.0, 60.0)
        value, _ = provider.querier.query_value('sum(rate(http_requests_total{version="1.1.0"}[30s]))', 60.0)
    finally:
        provider.close()
    assert counts.requests is None and counts.error and counts.error.startswith("no data")
    assert value == 0.3  # other queries behave as before


def test_no_data_reasons(fake: FakePrometheus) -> None:
    fake.up["1.1.0"] = 0
    fake.counts["1.0.0"] = {"200": 10}
    provider = provider_for(fake, namespace_label="namespace")
    try:
        down = provider.response_counts("web", "1.1.0", "prod", 0.0, 60.0)
        unknown = provider.response_counts("web", "9.9.9", "prod", 0.0, 60.0)
    finally:
        provider.close()
    assert down.error == (
        "no data: Prometheus cannot scrape 1.1.0: up == 0 for its target(s) fake/fake-1.1.0"
        " during the span (1 of 1 target(s) failing)"
    )
    assert unknown.error and unknown.error.endswith('Prometheus has app="web" with version="1.0.0"')
    assert len(fake.queries) == 2 + 3  # down: counts + up; unknown: counts + up + versions
