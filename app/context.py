"""What every process needs: the configuration, the store, the metrics provider, routers. Built once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

from app.config_file.loader import ConfigError, load_config
from app.config_file.schema import ApplicationConfig, SluiceConfig
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.core.models import Release
from app.store import Store, connect
from app.store.connection import DEFAULT_REDIS_URL, RedisUrlError, redis_url_from_env
from integrations.metrics.interface import BatchPrimer, MetricProvider
from integrations.prometheus.client import PrometheusQuerier
from integrations.registry.metrics import provider_for
from integrations.registry.routers import Router, router_for

__all__ = ["DEFAULT_REDIS_URL", "Context", "UnknownService", "get_context", "redis_url", "set_context"]


def redis_url() -> str:
    """REDIS_URL, or the Sentinel one from REDIS_SENTINELS (app/store/connection.py); a mistake is a ConfigError."""
    try:
        return redis_url_from_env(os.environ)
    except RedisUrlError as exc:
        raise ConfigError("environment", [("REDIS_URL/REDIS_SENTINELS", str(exc))]) from None


class UnknownService(LookupError):
    """A release names an application or service that is no longer in the configuration."""


@dataclass
class Context:
    config: SluiceConfig
    redis_url: str = DEFAULT_REDIS_URL
    prometheus_url: str | None = None
    _routers: dict[str, Router] = field(default_factory=dict)

    @cached_property
    def store(self) -> Store:
        return Store(connect(self.redis_url))

    @cached_property
    def metrics_provider(self) -> MetricProvider:
        """From the registry: `metrics_provider` (or `prometheus`) of the configuration."""
        return provider_for(self.config.metrics_source, url=self.prometheus_url)

    @cached_property
    def prometheus(self) -> PrometheusQuerier:
        """The Prometheus client (the provider's own when the provider is Prometheus)."""
        querier = getattr(self.metrics_provider, "querier", None)
        if isinstance(querier, PrometheusQuerier):
            return querier
        prom = self.config.prometheus
        return PrometheusQuerier(self.prometheus_url or prom.url, timeout=prom.timeout)

    def prime_metrics(self, releases: list[Release], at: float) -> int:
        """Let a provider that can (Prometheus) ask once for a batch of releases; none forgets."""
        provider = self.metrics_provider
        if not isinstance(provider, BatchPrimer):
            return 0
        work = []
        for release in releases:
            try:
                work.append((release, self.locate(release)[2]))
            except UnknownService:
                continue
        return provider.prime(work, self.config.metrics, at)

    def router(self, application: ApplicationConfig) -> Router:
        if application.name not in self._routers:
            self._routers[application.name] = router_for(application)
        return self._routers[application.name]

    def locate(self, release: Release) -> tuple[ApplicationConfig, ServiceConfig, PolicyConfig]:
        app = self.config.application(release.application)
        svc = app.service(release.service) if app else None
        if app is None or svc is None:
            raise UnknownService(
                f"service {release.service!r} of application {release.application!r} is not in the configuration"
            )
        try:
            policy = self.config.policy(release.policy)
        except StopIteration:
            raise UnknownService(f"policy {release.policy!r} is not in the configuration") from None
        return app, svc, policy


_context: Context | None = None


def get_context() -> Context:
    """The process's context, from SLUICE_CONFIG, REDIS_URL and PROMETHEUS_URL."""
    global _context
    if _context is None:
        path = os.environ.get("SLUICE_CONFIG", "sluice.yaml")
        _context = Context(
            config=load_config(path),
            redis_url=redis_url(),
            prometheus_url=os.environ.get("PROMETHEUS_URL") or None,
        )
    return _context


def set_context(ctx: Context | None) -> None:
    """For tests and the demo: use this context instead of one built from the environment."""
    global _context
    _context = ctx
