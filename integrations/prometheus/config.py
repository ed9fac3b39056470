"""The Prometheus metrics provider's configuration, and the users' own PromQL metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from app.core.config.base import Duration, Strict
from integrations.prometheus.promql import TEMPLATE_VARIABLES, template_placeholders


class PrometheusConfig(Strict):
    """Prometheus (HTTP API v1): the built-in checks read a requests counter and a latency histogram."""

    type: Literal["prometheus"] = "prometheus"
    url: str = "http://127.0.0.1:9090"
    timeout: Duration = 3.0
    service_label: str = Field("app", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    version_label: str = Field("version", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    namespace_label: str | None = Field(None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    requests_metric: str = Field("http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    status_label: str = Field("code", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    latency_histogram: str = Field("http_request_duration_seconds", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MetricConfig(Strict):
    """A PromQL template. Variables: {service} {version} {stable_version} {namespace} {window}."""

    query: str = Field(min_length=1, max_length=4000)
    description: str = ""

    @field_validator("query")
    @classmethod
    def _known_variables(cls, query: str) -> str:
        unknown = sorted(set(template_placeholders(query)) - set(TEMPLATE_VARIABLES))
        if unknown:
            raise ValueError(
                f"unknown template variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"use {', '.join('{' + v + '}' for v in TEMPLATE_VARIABLES)}"
            )
        return query
