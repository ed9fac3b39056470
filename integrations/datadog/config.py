"""The Datadog metrics provider's configuration: where the API is, which environment variables hold
the keys, and which metrics and tags the built-in checks read.

The defaults fit Datadog APM's trace metrics for a web service instrumented by a Datadog tracer:
`trace.http.request.hits` (a count of requests, tagged `service`, `version`, `env` and
`http.status_class` such as `5xx`) and `trace.http.request` (a distribution of request durations
in seconds, with percentiles). Any count metric and distribution metric with equivalent tags work.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from app.core.config.base import Duration, EnvName, Strict

METRIC_NAME = r"^[A-Za-z][A-Za-z0-9_.]{0,199}$"
TAG_KEY = r"^[A-Za-z][A-Za-z0-9_.\-/]{0,99}$"
# A whole `key:value` tag for `tags`; the value may not hold a comma, brace, space or wildcard.
TAG = r"^[A-Za-z][A-Za-z0-9_.\-/]{0,99}:[A-Za-z0-9_.\-/:]{1,100}$"


class DatadogConfig(Strict):
    """Datadog's metrics query API (`GET /api/v1/query`), keys from the environment."""

    type: Literal["datadog"]
    site: str = Field(
        "datadoghq.com",
        pattern=r"^([a-z0-9-]+\.)*(datadoghq\.com|datadoghq\.eu|ddog-gov\.com)$",
        description="Datadog site: datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, "
        "ap1.datadoghq.com, ddog-gov.com, ... (the API is https://api.<site>).",
    )
    base_url: str | None = Field(
        None, pattern=r"^https?://[^\s/?#]+[^\s?#]*$", description="Use this address instead of https://api.<site>."
    )
    api_key_env: EnvName = Field("DD_API_KEY", description="Environment variable holding the API key.")
    app_key_env: EnvName = Field(
        "DD_APP_KEY", description="Environment variable holding the application key (scope timeseries_query)."
    )
    timeout: Duration = Field(5.0, description="Time budget of one query, retries and rate-limit waits included.")
    retries: int = Field(2, ge=0, le=5, description="Retries after a 5xx or a connection error.")
    max_rate_limit_wait: Duration = Field(
        2.0, description="On 429, wait for X-RateLimit-Reset if it is at most this long; else report rate limited."
    )
    service_tag: str = Field("service", pattern=TAG_KEY)
    version_tag: str = Field("version", pattern=TAG_KEY)
    namespace_tag: str | None = Field(None, pattern=TAG_KEY, description="e.g. kube_namespace (default: not used).")
    tags: list[str] = Field(
        default_factory=list, description="More tags every query is scoped to, e.g. [env:prod].", max_length=20
    )
    requests_metric: str = Field(
        "trace.http.request.hits", pattern=METRIC_NAME, description="A count metric of requests."
    )
    status_class_tag: str = Field(
        "http.status_class", pattern=TAG_KEY, description="Tag of requests_metric whose values are 2xx..5xx."
    )
    latency_metric: str = Field(
        "trace.http.request", pattern=METRIC_NAME, description="A distribution metric of request durations."
    )
    latency_unit: Literal["s", "ms"] = Field("s", description="The unit of latency_metric's values.")
    latency_percentiles: list[float] = Field(
        [50, 75, 90, 95, 99, 99.9],
        min_length=1,
        max_length=10,
        description="Percentiles read from latency_metric to estimate the fraction of responses under a bound.",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        bad = [t for t in tags if not re.fullmatch(TAG, t)]
        if bad:
            raise ValueError(f"not a key:value tag Sluice can put in a query: {', '.join(map(repr, bad))}")
        return tags

    @field_validator("latency_percentiles")
    @classmethod
    def _percentiles(cls, values: list[float]) -> list[float]:
        if any(not 0 < v < 100 for v in values):
            raise ValueError("percentiles are between 0 and 100 (exclusive), e.g. [50, 90, 95, 99]")
        return sorted(set(values))

    @property
    def api_url(self) -> str:
        return (self.base_url or f"https://api.{self.site}").rstrip("/")
