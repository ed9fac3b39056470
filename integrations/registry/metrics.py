"""Every metric provider: `metrics_provider.type` -> (configuration model, factory). One line each.

The configuration's `metrics_provider` union, its JSON Schema and `sluice kinds` are built from
PROVIDERS. A provider's client is imported only when the provider is built.
"""

from __future__ import annotations

from typing import Any

from integrations.datadog.config import DatadogConfig
from integrations.kinds import Kind, Registry
from integrations.metrics.interface import MetricProvider
from integrations.prometheus.config import PrometheusConfig


def _prometheus(config: PrometheusConfig, url: str | None = None) -> MetricProvider:
    from integrations.prometheus.provider import PrometheusProvider

    return PrometheusProvider(config, url)


def _datadog(config: DatadogConfig, url: str | None = None) -> MetricProvider:
    """`url` (PROMETHEUS_URL) is Prometheus's: Datadog's address is `base_url` or its site."""
    from integrations.datadog.provider import DatadogProvider

    return DatadogProvider(config)


PROVIDERS: Registry[Kind] = Registry(
    "metrics provider",
    [
        Kind(PrometheusConfig, _prometheus, "Prometheus HTTP API: PromQL checks, grouped queries per batch"),
        Kind(DatadogConfig, _datadog, "Datadog metrics query API: APM trace metrics, keys from the environment"),
    ],
)


def provider_for(config: Any, url: str | None = None) -> MetricProvider:
    """The provider for a `metrics_provider` (or `prometheus`) section; `url` overrides its address."""
    return PROVIDERS[config.type].factory(config, url)
