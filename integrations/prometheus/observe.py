"""Measure a release's checks on Prometheus: the I/O half of an evaluation.

The pure decision core never talks to Prometheus; it receives `CheckObservation`s built
here. Nothing in this module raises for a bad query or an unreachable server: the reason
goes into `CheckObservation.error` (and the value stays None), so a tick always decides.
"""

from __future__ import annotations

from typing import Protocol

from app.core.config.policy import CheckConfig, PolicyConfig
from app.core.models import CheckObservation, Release
from integrations.prometheus import queries
from integrations.prometheus.config import MetricConfig, PrometheusConfig
from integrations.prometheus.promql import render, window


class Querier(Protocol):
    """What observe needs from a Prometheus client (PrometheusQuerier, or a fake in unit tests)."""

    def query_value(self, promql: str, at: float) -> tuple[float | None, str | None]: ...


def template_variables(release: Release, window_text: str) -> dict[str, str]:
    """Values for a release's query templates; `version` is the candidate."""
    return {
        "service": release.service,
        "version": release.target_version,
        "stable_version": release.source_version,
        "namespace": release.namespace,
        "window": window_text,
    }


def observe_checks(
    policy: PolicyConfig,
    prom: PrometheusConfig,
    metrics: dict[str, MetricConfig],
    release: Release,
    querier: Querier,
    at: float,
) -> list[CheckObservation]:
    """One observation per check: the candidate's value and, with max_over_stable, the stable's."""
    variables = template_variables(release, window(policy.query_window))
    return [_observe(check, prom, metrics, release, querier, at, variables) for check in policy.checks]


def _observe(
    check: CheckConfig,
    prom: PrometheusConfig,
    metrics: dict[str, MetricConfig],
    release: Release,
    querier: Querier,
    at: float,
    variables: dict[str, str],
) -> CheckObservation:
    try:
        template = queries.check_template(check, prom, metrics)
        query = render(template, variables)
        stable_query = (
            render(template, {**variables, "version": release.source_version})
            if check.max_over_stable is not None
            else None
        )
    except ValueError as exc:
        return CheckObservation(name=check.name, error=f"cannot build the query: {exc}")

    value, error = querier.query_value(query, at)
    if error and check.type == "latency" and error.startswith("no data"):
        error += (
            f" (no traffic for {release.target_version} in the window, or {check.under:g}s is not a bucket"
            f" bound of {prom.latency_histogram})"
        )
    stable_value: float | None = None
    if stable_query is not None:
        stable_value, stable_error = querier.query_value(stable_query, at)
        if stable_error:
            stable_error = f"stable version {release.source_version}: {stable_error}"
            error = f"{error}; {stable_error}" if error else stable_error
    return CheckObservation(
        name=check.name,
        query=query,
        value=value,
        stable_query=stable_query,
        stable_value=stable_value,
        error=error,
    )


def observe_step_requests(
    prom: PrometheusConfig, release: Release, querier: Querier, at: float, since: float
) -> float | None:
    """Requests the candidate served between `since` (the step's start) and `at`; None if unknown.

    `increase()` extrapolates to the window's edges, so the count is approximate (and not
    necessarily whole); a step's request minimum is a volume gate, not an exact tally.
    """
    if at <= since:
        return 0.0
    try:
        query = render(queries.step_requests_template(prom), template_variables(release, window(at - since)))
    except ValueError:
        return None
    value, _error = querier.query_value(query, at)
    return value
