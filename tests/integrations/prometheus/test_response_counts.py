"""Response counts (what a judge compares between candidate and stable) against a REAL Prometheus.

The data is imported with promtool (see test_prometheus_checks.py and tests/support/prom_data.py):
steady versions, and versions whose series are created inside the span (a fresh process, a
first 5xx), restart (counter reset), stop, or whose scrape target is down (`up` 0).
The span is the 300 s before AT; series "exist before the span" if they have a sample in the
5 minutes (Prometheus's lookback) before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.prometheus.client import PrometheusQuerier
from integrations.prometheus.provider import PrometheusProvider
from tests.integrations.prometheus.test_prometheus_checks import (
    ALL_TRAFFIC,
    AT,
    CANDIDATE,
    END,
    GO_STYLE,
    PROM,
    STABLE,
    START,
    STEP,
)
from tests.support.prom_data import (
    BUCKETS,
    Target,
    Traffic,
    expected_requests_between,
    openmetrics,
    serve_history,
)

pytestmark = pytest.mark.integration

SPAN = 300
FIRST_ERRORS = Traffic(  # a candidate's first 500 five seconds before AT, its first 503 at AT
    "cart",
    "3.0.1",
    codes={"200": 20, "500": 1, "503": 1},
    latencies=[(0.05, 22)],
    code_born_at={"500": AT - 5, "503": AT},
)
FRESH = Traffic(  # a process that started a minute before AT: every series is created then
    "cart", "3.0.2", codes={"200": 9, "500": 1}, latencies=[(0.05, 8), (0.75, 2)], born_at=AT - 60
)
JUST_STARTED = Traffic("cart", "3.0.3", codes={"200": 4}, latencies=[(0.05, 4)], born_at=AT)  # one sample
RESTARTED = Traffic(  # the process restarted 100 s before AT: every counter starts again from 0
    "cart", "3.0.4", codes={"200": 10, "500": 2}, latencies=[(0.05, 12)], reset_at=AT - 100
)
BORN_BEFORE = Traffic(  # created 2 minutes before the span: counts its increase, not its whole value
    "cart", "3.0.5", codes={"200": 10}, latencies=[(0.05, 10)], born_at=AT - SPAN - 120
)
GONE = Traffic(  # exported by a target without release labels, which stopped answering before the span
    "cart",
    "3.0.7",
    codes={"200": 5},
    latencies=[(0.05, 5)],
    extra={"job": "cart", "instance": "127.0.0.1:9102"},
    ends_at=AT - 700,
)
TARGETS = (
    # 3.0.6's target carries the release labels and has never been scraped successfully
    Target(
        {"job": "cart", "instance": "127.0.0.1:9101", "app": "cart", "version": "3.0.6", "namespace": "prod"},
        0,
        START,
        END,
    ),
    # GONE's target: up until its series stop, down since
    Target({"job": "cart", "instance": "127.0.0.1:9102"}, 1, START, AT - 700),
    Target({"job": "cart", "instance": "127.0.0.1:9102"}, 0, AT - 695, END),
    # 3.0.8's target is scraped but exports no requests counter
    Target(
        {"job": "cart", "instance": "127.0.0.1:9103", "app": "cart", "version": "3.0.8", "namespace": "prod"},
        1,
        START,
        END,
    ),
)
TRAFFIC = [*ALL_TRAFFIC, FIRST_ERRORS, FRESH, JUST_STARTED, RESTARTED, BORN_BEFORE, GONE]


@pytest.fixture(scope="module")
def prom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    text = openmetrics(TRAFFIC, START, END, STEP, targets=TARGETS)
    proc, url = serve_history(tmp_path_factory.mktemp("prometheus-counts"), text)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture()
def provider(prom_url: str) -> Iterator[PrometheusProvider]:
    p = PrometheusProvider(PROM, prom_url)
    yield p
    p.close()


def sent_queries(provider: PrometheusProvider) -> list[str]:
    """Record the queries the provider sends from now on."""
    sent: list[str] = []
    real_query = provider.querier._query
    provider.querier._query = lambda q, at: (sent.append(q), real_query(q, at))[1]  # type: ignore[method-assign]
    return sent


def counts(provider: PrometheusProvider, t: Traffic, span: float = SPAN, namespace: str | None = None):  # type: ignore[no-untyped-def]
    return provider.response_counts(t.app, t.version, namespace or t.namespace, AT - span, AT)


def steady(n: float, seconds: float = SPAN) -> float:
    """What a series growing by n per interval counts over `seconds`."""
    return n / STEP * seconds


# --- series that existed before the span ----------------------------------------------------------


@pytest.mark.parametrize("traffic", [CANDIDATE, STABLE, GO_STYLE], ids=lambda t: t.version)
def test_counts_by_class_code_and_buckets_match_the_data(provider: PrometheusProvider, traffic: Traffic) -> None:
    sent = sent_queries(provider)
    result = counts(provider, traffic)
    assert result.error is None
    assert len(sent) == 1  # codes and buckets in one query; nothing more when there is data
    assert result.requests == pytest.approx(expected_requests_between(traffic, SPAN, STEP), rel=0.02)
    assert set(result.by_class) == {"2xx", "3xx", "4xx", "5xx"}
    for cls in ("2xx", "3xx", "4xx", "5xx"):
        n = sum(c for code, c in traffic.codes.items() if code[0] == cls[0])
        assert result.by_class[cls] == pytest.approx(steady(n), rel=0.02, abs=1e-9)
    assert set(result.by_code) == set(traffic.codes)
    for code, n in traffic.codes.items():
        assert result.by_code[code] == pytest.approx(steady(n), rel=0.02)
    bounds = [b for b, _ in result.buckets]
    assert bounds == [*BUCKETS, float("inf")]  # "1" and "1.0" spellings read as one bound, ascending
    for bound, value in result.buckets:
        n = sum(c for v, c in traffic.latencies if v <= bound)
        assert value == pytest.approx(steady(n), rel=0.02, abs=1e-9)


def test_by_code_lets_a_service_leave_out_a_code(provider: PrometheusProvider) -> None:
    result = counts(provider, CANDIDATE)
    assert result.by_code["404"] == pytest.approx(steady(4), rel=0.02)
    assert result.by_class["4xx"] - result.by_code["404"] == pytest.approx(0, abs=1e-6)


def test_a_counter_reset_counts_the_increase_across_it(provider: PrometheusProvider) -> None:
    result = counts(provider, RESTARTED)
    assert result.error is None
    assert result.requests == pytest.approx(steady(12), rel=0.02)  # as if it had not restarted
    assert result.by_code["500"] == pytest.approx(steady(2), rel=0.02)
    assert dict(result.buckets)[float("inf")] == pytest.approx(steady(12), rel=0.02)


def test_a_series_created_within_the_lookback_before_the_span_counts_its_increase(
    provider: PrometheusProvider,
) -> None:
    result = counts(provider, BORN_BEFORE)
    assert result.requests == pytest.approx(steady(10), rel=0.02)  # not its whole value at AT (850)


# --- series created inside the span count whole ------------------------------------------------------


def test_first_errors_count_whole(provider: PrometheusProvider, prom_url: str) -> None:
    result = counts(provider, FIRST_ERRORS)
    assert result.error is None
    assert result.by_code["500"] == pytest.approx(2)  # created at AT-5 with 1, 2 at AT
    assert result.by_code["503"] == pytest.approx(1)  # created at AT: one sample
    assert result.by_code["200"] == pytest.approx(steady(20), rel=0.02)
    assert result.by_class["5xx"] == pytest.approx(3)
    # increase() alone has nothing for a series with a single sample: the first 503 reads as no 503
    q = PrometheusQuerier(prom_url, timeout=5.0)
    try:
        plain, error = q.query_vector(
            'sum by (code) (increase(http_requests_total{app="cart",version="3.0.1"}[300s]))', AT
        )
    finally:
        q.close()
    assert error is None
    plain_by_code = {labels["code"]: value for labels, value in plain}
    assert "503" not in plain_by_code


def test_a_fresh_process_counts_every_request_and_bucket(provider: PrometheusProvider) -> None:
    result = counts(provider, FRESH)
    samples = 60 // STEP + 1  # the first sample already holds one interval's requests
    assert result.requests == pytest.approx(10 * samples)
    assert result.by_code == pytest.approx({"200": 9 * samples, "500": 1 * samples})
    buckets = dict(result.buckets)
    assert buckets[0.05] == pytest.approx(8 * samples) and buckets[1.0] == pytest.approx(10 * samples)
    assert buckets[float("inf")] == pytest.approx(10 * samples)
    just_started = counts(provider, JUST_STARTED)  # a single sample: increase() has nothing
    assert (just_started.requests, just_started.error) == (pytest.approx(4), None)
    assert dict(just_started.buckets)[float("inf")] == pytest.approx(4)


def test_set_operators_put_each_series_on_one_side(prom_url: str) -> None:
    """`and`/`unless`/`or` ignore `__name__`: every code appears once; born ones keep their name."""
    sel = 'http_requests_total{app="cart",version="3.0.1"}'
    existed = f"present_over_time({sel}[5m] offset 300s)"
    query = f"(increase({sel}[300s]) and {existed}) or (last_over_time({sel}[300s]) unless {existed})"
    q = PrometheusQuerier(prom_url, timeout=5.0)
    try:
        rows, error = q.query_vector(query, AT)
    finally:
        q.close()
    assert error is None
    assert sorted(labels["code"] for labels, _ in rows) == ["200", "500", "503"]


# --- why there is no data ----------------------------------------------------------------------------


def test_a_failing_scrape_target_with_release_labels_is_named(provider: PrometheusProvider) -> None:
    sent = sent_queries(provider)
    result = provider.response_counts("cart", "3.0.6", "prod", AT - SPAN, AT)
    assert result.requests is None
    assert result.error == (
        "no data: Prometheus cannot scrape 3.0.6: up == 0 for its target(s) cart/127.0.0.1:9101"
        " during the span (1 of 1 target(s) failing)"
    )
    assert len(sent) == 2  # the counts query and the `up` query


def test_a_failing_target_without_release_labels_is_found_through_the_series_it_exported(
    provider: PrometheusProvider,
) -> None:
    result = counts(provider, GONE)
    assert result.requests is None
    assert result.error and result.error.startswith("no data: Prometheus cannot scrape 3.0.7: up == 0")
    assert "cart/127.0.0.1:9102" in result.error


def test_a_target_that_is_up_but_exports_nothing(provider: PrometheusProvider) -> None:
    sent = sent_queries(provider)
    result = provider.response_counts("cart", "3.0.8", "prod", AT - SPAN, AT)
    assert result.error and result.error.startswith(
        'no data: no http_requests_total series matches {app="cart",version="3.0.8",namespace="prod"} over the span;'
        " Prometheus scrapes its target(s) cart/127.0.0.1:9103 (up == 1) but they exported no requests in it;"
    )
    assert len(sent) == 3  # counts, `up`, versions


def test_a_label_mismatch_lists_the_versions_prometheus_has(provider: PrometheusProvider) -> None:
    unknown = provider.response_counts("cart", "v3.0.1", "prod", AT - SPAN, AT)
    assert unknown.requests is None
    assert unknown.error == (
        'no data: no http_requests_total series matches {app="cart",version="v3.0.1",namespace="prod"}'
        ' over the span; Prometheus has app="cart" with version="3.0.1",namespace="prod",'
        ' version="3.0.2",namespace="prod", version="3.0.3",namespace="prod",'
        ' version="3.0.4",namespace="prod", version="3.0.5",namespace="prod"'
    )
    other_namespace = counts(provider, FIRST_ERRORS, namespace="staging")
    assert other_namespace.error and 'namespace="staging"} over the span' in other_namespace.error
    assert 'version="3.0.1",namespace="prod"' in other_namespace.error
    nothing = provider.response_counts("nosuch", "1.0.0", "prod", AT - SPAN, AT)
    assert nothing.error and nothing.error.startswith(
        'no data: no http_requests_total series has app="nosuch" over the span, for any version'
    )


def test_response_counts_say_why_there_is_no_data(provider: PrometheusProvider) -> None:
    missing = provider.response_counts("shop", "9.9.9", "prod", AT - 60, AT)
    empty = provider.response_counts("shop", CANDIDATE.version, "prod", AT, AT)
    bad = provider.response_counts("shop", 'x"}', "prod", AT - 60, AT)
    assert missing.requests is None and missing.error and missing.error.startswith("no data")
    assert 'version="1.0.371",namespace="prod"' in missing.error
    assert empty.error and "empty interval" in empty.error
    assert bad.error and "cannot build the query" in bad.error
