"""A batch's response counts in one request (integrations/prometheus/packed_counts.py), against a
REAL Prometheus: each part's answer must be what the single query answers, in one POST."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations.metrics.interface import CountsSpan
from integrations.prometheus.client import PRIMED_FOR_SECONDS
from integrations.prometheus.packed_counts import split
from integrations.prometheus.promql import render
from integrations.prometheus.provider import PrometheusProvider
from integrations.prometheus.queries import response_counts_template
from tests.integrations.prometheus.test_prometheus_checks import AT, CANDIDATE, PROM, STABLE
from tests.integrations.prometheus.test_response_counts import (  # noqa: F401 - the module's Prometheus
    FIRST_ERRORS,
    FRESH,
    RESTARTED,
    SPAN,
    prom_url,
)

pytestmark = pytest.mark.integration

PACKED = [CANDIDATE, STABLE, FIRST_ERRORS, FRESH, RESTARTED]


@pytest.fixture()
def packed(prom_url: str) -> Iterator[PrometheusProvider]:  # noqa: F811 - the imported fixture
    p = PrometheusProvider(PROM, prom_url)
    yield p
    p.close()


@pytest.fixture()
def single(prom_url: str) -> Iterator[PrometheusProvider]:  # noqa: F811 - the imported fixture
    p = PrometheusProvider(PROM, prom_url)
    yield p
    p.close()


def requests_sent(provider: PrometheusProvider) -> list[tuple[str, bool]]:
    """(query, sent as a form) of each request the provider makes from now on."""
    sent: list[tuple[str, bool]] = []
    real = provider.querier._query

    def recording(promql: str, at: float, **kwargs: Any) -> Any:
        sent.append((promql, bool(kwargs.get("form"))))
        return real(promql, at, **kwargs)

    provider.querier._query = recording  # type: ignore[method-assign]
    return sent


def test_a_batch_of_counts_is_one_request_and_each_part_is_what_its_own_query_says(
    packed: PrometheusProvider, single: PrometheusProvider
) -> None:
    sent = requests_sent(packed)
    spans = [(t.app, t.version, t.namespace, AT - SPAN) for t in PACKED]
    spans.append((CANDIDATE.app, CANDIDATE.version, CANDIDATE.namespace, AT - 60))  # another span, same version
    assert packed.prime_counts(spans, AT) == len(spans)
    assert len(sent) == 1 and sent[0][1]  # one request, a POST form
    for service, version, namespace, start in spans:
        got = packed.response_counts(service, version, namespace, start, AT + 0.5)  # the tick comes a bit later
        want = single.response_counts(service, version, namespace, start, AT)
        assert got.error is None and got.requests > 0
        assert got.model_dump() == want.model_dump()
    assert len(sent) == 1  # every tick's counts came from the batch's request


def test_a_span_that_ended_before_the_batch_is_packed_pinned_to_its_end(
    packed: PrometheusProvider, single: PrometheusProvider
) -> None:
    """Stable's counts before the release end when it was created, not when the batch runs: their
    part (`@` its end) must answer what their own query evaluated at that end answers."""
    sent = requests_sent(packed)
    ended = AT - 60  # e.g. the release was created a minute before this batch
    spans = [
        CountsSpan(STABLE.app, STABLE.version, STABLE.namespace, AT - SPAN, ended),
        CountsSpan(STABLE.app, STABLE.version, STABLE.namespace, AT - SPAN),  # same start, ending now
        CountsSpan(CANDIDATE.app, CANDIDATE.version, CANDIDATE.namespace, AT - SPAN, ended),
    ]
    assert packed.prime_counts(spans, AT) == len(spans)
    assert len(sent) == 1 and " @ " in sent[0][0]
    got = []
    for service, version, namespace, start, end in spans:
        got.append(packed.response_counts(service, version, namespace, start, AT + 0.5 if end is None else end))
        want = single.response_counts(service, version, namespace, start, AT if end is None else end)
        assert got[-1].error is None and got[-1].requests > 0
        assert got[-1].model_dump() == want.model_dump()
    assert got[0].requests < got[1].requests  # the two spans of stable were kept apart
    assert len(sent) == 1  # every tick's counts came from the batch's request


def test_a_version_without_data_is_asked_alone_and_says_why(packed: PrometheusProvider) -> None:
    sent = requests_sent(packed)
    spans = [(CANDIDATE.app, CANDIDATE.version, CANDIDATE.namespace, AT - SPAN), ("shop", "9.9.9", "prod", AT - SPAN)]
    assert packed.prime_counts(spans, AT) == 1
    missing = packed.response_counts("shop", "9.9.9", "prod", AT - SPAN, AT)
    assert missing.error is not None and missing.error.startswith("no data")
    assert len(sent) > 1 and not sent[1][1]  # asked on its own, which explains the missing data


def test_primed_counts_are_not_used_for_another_time_and_are_forgotten(packed: PrometheusProvider) -> None:
    spans = [(t.app, t.version, t.namespace, AT - SPAN) for t in (CANDIDATE, STABLE)]
    packed.prime_counts(spans, AT)
    sent = requests_sent(packed)
    late = AT + PRIMED_FOR_SECONDS + 1
    packed.response_counts(CANDIDATE.app, CANDIDATE.version, CANDIDATE.namespace, AT - SPAN, late)
    assert len(sent) == 1  # too late for the batch's answer: asked again
    packed.prime_counts([], 0)
    packed.response_counts(STABLE.app, STABLE.version, STABLE.namespace, AT - SPAN, AT)
    assert len(sent) == 2


def test_primed_counts_are_each_tick_s_own(packed: PrometheusProvider) -> None:
    """A tick gets the batch's answer as its own object (it may change it); asked again, it asks."""
    span = (CANDIDATE.app, CANDIDATE.version, CANDIDATE.namespace, AT - SPAN)
    packed.prime_counts([span, (STABLE.app, STABLE.version, STABLE.namespace, AT - SPAN)], AT)
    sent = requests_sent(packed)
    first = packed.response_counts(*span, AT)
    first.by_class["5xx"] = -1.0
    again = packed.response_counts(*span, AT)
    assert len(sent) == 1 and again.by_class["5xx"] >= 0


def test_a_packed_query_that_fails_primes_nothing() -> None:
    provider = PrometheusProvider(PROM, "http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        spans = [(t.app, t.version, t.namespace, AT - SPAN) for t in (CANDIDATE, STABLE)]
        assert provider.prime_counts(spans, AT) == 0
    finally:
        provider.close()


def test_an_answer_with_untagged_series_is_not_trusted() -> None:
    assert split([({"code": "200", "sluice_part": "0"}, 1.0), ({"code": "200"}, 2.0)], 1) is None
    assert split([({"code": "200", "sluice_part": "2"}, 1.0)], 2) is None
    assert split([({"code": "200", "sluice_part": "1"}, 1.0)], 2) == [[], [({"code": "200"}, 1.0)]]


@pytest.mark.parametrize("end", [None, AT - 60])
def test_a_counts_query_rendered_once_is_what_render_makes_of_it(end: float | None) -> None:
    provider = PrometheusProvider(PROM, "http://127.0.0.1:9")
    try:
        for win in ("300s", "2500ms", "300s"):  # the second 300s comes from what was rendered before
            variables = {"service": STABLE.app, "version": STABLE.version, "namespace": STABLE.namespace}
            want = render(response_counts_template(PROM, end), {**variables, "window": win})
            assert provider._counts_query(STABLE.app, STABLE.version, STABLE.namespace, win, end) == want
        with pytest.raises(ValueError, match="not a PromQL duration"):
            provider._counts_query(STABLE.app, STABLE.version, STABLE.namespace, "5m) or vector(1", end)
    finally:
        provider.close()
