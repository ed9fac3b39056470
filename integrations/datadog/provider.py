"""Datadog as Sluice's metric provider (integrations/metrics/interface.py).

The built-in checks read two metrics (names and tags in DatadogConfig):
- `requests_metric`, a count (default `trace.http.request.hits`), asked once per version and
  window as `sum:<metric>{<scope>} by {<status_class_tag>}.as_count()`; the points of each series
  are summed. That one answer gives `request_rate` (requests per minute), `error_rate` (5xx over
  all; 0 when there are requests but no 5xx series), `step_requests` and `response_counts`.
- `latency_metric`, a distribution (default `trace.http.request`, durations in seconds), asked
  as `p50:<metric>{<scope>},p75:...` for the configured percentiles. A distribution has
  percentiles, not bucket counts, so a `latency` check ("the fraction of responses under 500ms")
  is *estimated*: it is the highest configured percentile rank whose value is at or under the
  bound (p90 = 420ms and p95 = 610ms give 0.90 for 500ms), a lower bound of the true fraction,
  never more than the highest percentile configured (default 99.9); 0 when even the lowest
  percentile is over the bound. Each percentile is the largest of its points in the window (the
  worst interval). `response_counts` has no latency buckets (an empty list, not an error): a
  judge compares status classes only on Datadog.

The scope is `<service_tag>:<service>,<version_tag>:<version>[,<namespace_tag>:<ns>][,tags...]`.
Datadog stores tag values in lower case, so values are lowered; a value outside
`[a-z0-9_.-/]` (after lowering) is refused rather than escaped ("cannot build the query"). A
`query` check renders the user's template (`{service}`, `{version}`, `{stable_version}`,
`{namespace}`, and `{window}` as whole seconds) with the same checked values; it must answer one
series, whose value is the mean of its points in the window. A `{name}` in a template is always one of
these variables: a template cannot group `by {version}` (group by another tag, or not at all).

Nothing here raises: reasons (no data, API errors, "rate limited") go into the observation.
"""

from __future__ import annotations

import re
from typing import Any

from app.core.config.policy import CheckConfig, PolicyConfig
from app.core.models import CheckObservation, Release, ResponseCounts
from integrations.datadog.client import DatadogQuerier, Series
from integrations.datadog.config import DatadogConfig

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
NO_DATA = "no data: the query returned no series"
_VALUE_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-/]{0,199}$")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")
TEMPLATE_VARIABLES = ("service", "version", "stable_version", "namespace", "window")

Counts = tuple[float | None, dict[str, float], str | None]  # (requests, by class, reason)


def tag_value(value: str, what: str) -> str:
    """A value as it may appear in a query's scope: lowered (as Datadog stores tags), safe charset."""
    lowered = value.lower()
    if not _VALUE_RE.match(lowered):
        raise ValueError(f"{what} {value!r} is not a Datadog tag value Sluice can query (use [a-z0-9_.-/])")
    return lowered


def scope(cfg: DatadogConfig, service: str, version: str, namespace: str) -> str:
    parts = [f"{cfg.service_tag}:{tag_value(service, 'service')}", f"{cfg.version_tag}:{tag_value(version, 'version')}"]
    if cfg.namespace_tag:
        parts.append(f"{cfg.namespace_tag}:{tag_value(namespace, 'namespace')}")
    return ",".join(parts + list(cfg.tags))


def counts_query(cfg: DatadogConfig, service: str, version: str, namespace: str) -> str:
    sel = scope(cfg, service, version, namespace)
    return f"sum:{cfg.requests_metric}{{{sel}}} by {{{cfg.status_class_tag}}}.as_count()"


def _percentile(q: float) -> str:
    return f"p{q:g}"


def latency_query(cfg: DatadogConfig, service: str, version: str, namespace: str) -> str:
    sel = scope(cfg, service, version, namespace)
    return ",".join(f"{_percentile(q)}:{cfg.latency_metric}{{{sel}}}" for q in cfg.latency_percentiles)


def fraction_under(percentiles: list[tuple[float, float]], under: float) -> float:
    """The lower bound of the fraction of responses at or under `under` seconds, from (rank, value)."""
    bound = under * (1 + 1e-9)
    return max((rank / 100 for rank, value in percentiles if value <= bound), default=0.0)


def render(template: str, variables: dict[str, str]) -> str:
    """A user's query template with checked values (`window` is whole seconds)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ValueError(f"unknown template variable {{{name}}}")
        if name == "window":
            return variables[name]
        return tag_value(variables[name], name)

    return _PLACEHOLDER_RE.sub(substitute, template)


class DatadogProvider:
    def __init__(self, config: DatadogConfig) -> None:
        self.config = config
        self.querier = DatadogQuerier(config)
        # Within one observe_checks: the same query over the same interval is asked once (the
        # counts query serves both error_rate and request_rate).
        self._asked: dict[tuple[str, float, float], tuple[list[Series], str | None]] | None = None

    def close(self) -> None:
        self.querier.close()

    def _ask(self, query: str, start: float, end: float) -> tuple[list[Series], str | None]:
        if self._asked is None:
            return self.querier.query(query, start, end)
        key = (query, start, end)
        if key not in self._asked:
            self._asked[key] = self.querier.query(query, start, end)
        return self._asked[key]

    # --- counts --------------------------------------------------------------------------------

    def _counts(self, service: str, version: str, namespace: str, start: float, end: float) -> tuple[str, Counts]:
        """(query, (requests, requests by status class, reason)); requests is None without data."""
        try:
            query = counts_query(self.config, service, version, namespace)
        except ValueError as exc:
            return "", (None, {}, f"cannot build the query: {exc}")
        series, error = self._ask(query, start, end)
        if error is not None:
            return query, (None, {}, error)
        if not series:
            return query, (None, {}, NO_DATA)
        by_class = dict.fromkeys(STATUS_CLASSES, 0.0)
        total = 0.0
        for s in series:
            count = sum(s.values)
            total += count
            cls = s.tags.get(self.config.status_class_tag, "").lower()
            if cls in by_class:
                by_class[cls] += count
        return query, (total, by_class, None)

    def step_requests(self, release: Release, at: float, since: float) -> float | None:
        if at <= since:
            return 0.0
        _, (requests, _, _) = self._counts(release.service, release.target_version, release.namespace, since, at)
        return requests

    def response_counts(self, service: str, version: str, namespace: str, start: float, end: float) -> ResponseCounts:
        """Requests and requests by status class; no latency buckets (a distribution has none)."""
        if end <= start:
            return ResponseCounts(error=f"empty interval: end {end} is not after start {start}")
        _, (requests, by_class, error) = self._counts(service, version, namespace, start, end)
        if requests is None:
            return ResponseCounts(error=error)
        return ResponseCounts(requests=requests, by_class=by_class, buckets=[])

    # --- checks --------------------------------------------------------------------------------

    def observe_checks(
        self, policy: PolicyConfig, metrics: dict[str, Any], release: Release, at: float
    ) -> list[CheckObservation]:
        self._asked = {}
        try:
            return [self._observe(check, metrics, release, at - policy.query_window, at) for check in policy.checks]
        finally:
            self._asked = None

    def _observe(
        self, check: CheckConfig, metrics: dict[str, Any], release: Release, start: float, at: float
    ) -> CheckObservation:
        query, value, error = self._measure(check, metrics, release, release.target_version, start, at)
        stable_query, stable_value = "", None
        if check.max_over_stable is not None:
            stable_query, stable_value, stable_error = self._measure(
                check, metrics, release, release.source_version, start, at
            )
            if stable_error:
                stable_error = f"stable version {release.source_version}: {stable_error}"
                error = f"{error}; {stable_error}" if error else stable_error
        return CheckObservation(
            name=check.name,
            query=query or None,
            value=value,
            stable_query=stable_query or None,
            stable_value=stable_value,
            error=error,
        )

    def _measure(
        self, check: CheckConfig, metrics: dict[str, Any], release: Release, version: str, start: float, end: float
    ) -> tuple[str, float | None, str | None]:
        """(query, value, reason) of one check for one version over [start, end]."""
        window = end - start
        if check.type in ("request_rate", "error_rate"):
            query, (requests, by_class, error) = self._counts(release.service, version, release.namespace, start, end)
            if requests is None:
                return query, None, error
            if check.type == "request_rate":
                return query, requests / window * 60, None
            if requests <= 0:
                return query, None, "no data: no requests in the window (0/0)"
            return query, by_class["5xx"] / requests, None
        if check.type == "latency":
            return self._latency(check, release, version, start, end)
        return self._query_check(check, metrics, release, version, start, end)

    def _latency(
        self, check: CheckConfig, release: Release, version: str, start: float, end: float
    ) -> tuple[str, float | None, str | None]:
        cfg = self.config
        if check.under is None:
            return "", None, f"latency check {check.name!r} has no `under` bound"
        try:
            query = latency_query(cfg, release.service, version, release.namespace)
        except ValueError as exc:
            return "", None, f"cannot build the query: {exc}"
        series, error = self._ask(query, start, end)
        if error is not None:
            return query, None, error
        scale = 0.001 if cfg.latency_unit == "ms" else 1.0
        percentiles = []
        for s in series:
            if s.values and 0 <= s.query_index < len(cfg.latency_percentiles):
                percentiles.append((cfg.latency_percentiles[s.query_index], max(s.values) * scale))
        if not percentiles:
            return query, None, f"{NO_DATA} (no traffic for {version} in the window, or no {cfg.latency_metric})"
        return query, fraction_under(percentiles, check.under), None

    def _query_check(
        self, check: CheckConfig, metrics: dict[str, Any], release: Release, version: str, start: float, end: float
    ) -> tuple[str, float | None, str | None]:
        metric = metrics.get(check.metric or "")
        if metric is None:
            return "", None, f"check {check.name!r} uses metric {check.metric!r}, which is not in `metrics`"
        variables = {
            "service": release.service,
            "version": version,
            "stable_version": release.source_version,
            "namespace": release.namespace,
            "window": str(max(1, round(end - start))),
        }
        try:
            query = render(metric.query, variables)
        except ValueError as exc:
            return "", None, f"cannot build the query: {exc}"
        series, error = self._ask(query, start, end)
        if error is not None:
            return query, None, error
        return (query, *_one_value(series))


def _one_value(series: list[Series]) -> tuple[float | None, str | None]:
    if not series:
        return None, NO_DATA
    if len(series) > 1:
        return None, f"query returned {len(series)} series; aggregate it (e.g. sum:...)"
    if not series[0].values:
        return None, "no data: the series has no points in the window"
    return sum(series[0].values) / len(series[0].values), None
