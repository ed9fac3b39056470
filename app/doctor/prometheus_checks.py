"""`sluice doctor`'s metrics checks: Prometheus answers, each service's stable version has the series
the judge counts, and the policies' own PromQL checks read something for it."""

from __future__ import annotations

from typing import Any

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.services import ServiceConfig
from app.doctor.findings import Finding
from app.doctor.series_checks import buckets, status_series
from app.doctor.service_facts import service_policies, stable_version

# How far back doctor looks for a service's series ("now" for a service with steady traffic).
RECENT_SECONDS = 300.0


def _prometheus_provider(ctx: Context) -> Any:
    from integrations.prometheus.provider import PrometheusProvider

    provider = ctx.metrics_provider
    return provider if isinstance(provider, PrometheusProvider) else None


def check_prometheus(ctx: Context, now: float) -> list[Finding]:
    provider = _prometheus_provider(ctx)
    if provider is None:
        return [Finding("metrics", "pass", f"metrics provider {ctx.config.metrics_source.type}: checked per service")]
    value, error = provider.querier.query_value("vector(1)", now)
    if error is not None or value != 1:
        return [
            Finding(
                "prometheus",
                "fail",
                error or f"`vector(1)` answered {value}",
                f"start Prometheus or fix `prometheus.url` ({provider.querier.url}; PROMETHEUS_URL overrides it)",
            )
        ]
    return [Finding("prometheus", "pass", f"{provider.querier.url} answers queries")]


def check_service_metrics(ctx: Context, app: ApplicationConfig, svc: ServiceConfig, now: float) -> list[Finding]:
    name = f"{app.name}/{svc.name}"
    stable = stable_version(ctx, app, svc)
    if stable is None:
        return [
            Finding(
                f"{name} metrics",
                "warn",
                "no stable version known (no release yet and no `stable_version`): cannot check its series",
                f"set `stable_version` on service {svc.name!r}, or let a first release set it",
            )
        ]
    counts = ctx.metrics_provider.response_counts(svc.name, stable, app.namespace, now - RECENT_SECONDS, now)
    out: list[Finding] = []
    if counts.requests is None:
        return [
            Finding(
                f"{name} metrics",
                "fail",
                f"the judge's counts for stable {stable} are empty: {counts.error}",
                "make the labels in `prometheus:` (service_label, version_label, namespace_label, requests_metric) "
                "match what the service exports, or fix its scrape",
            )
        ]
    if counts.requests <= 0:
        out.append(
            Finding(
                f"{name} metrics",
                "warn",
                f"stable {stable} has series but served no requests in the last {RECENT_SECONDS:.0f}s",
                "send traffic before a release: with none, steps wait and time out",
            )
        )
    else:
        out.append(
            Finding(
                f"{name} metrics", "pass", f"stable {stable}: {counts.requests:,.0f} requests in the last 5 minutes"
            )
        )
    provider = _prometheus_provider(ctx)
    if provider is not None:
        out += status_series(provider, svc, stable, app.namespace, now, name)
        out += buckets(ctx, provider, svc, stable, app.namespace, now, name)
    out += _query_checks(ctx, app, svc, stable, now, name)
    return out


def _query_checks(
    ctx: Context, app: ApplicationConfig, svc: ServiceConfig, stable: str, now: float, name: str
) -> list[Finding]:
    """The policies' own PromQL checks, asked about the stable version now."""
    from app.core.models import Release

    out = []
    for policy in service_policies(ctx, svc):
        queries = [c for c in policy.checks if c.type == "query"]
        if not queries:
            continue
        probe = Release(
            id="doctor",
            application=app.name,
            namespace=app.namespace,
            service=svc.name,
            source_version=stable,
            target_version=stable,
            policy=policy.name,
            created_at=now,
            updated_at=now,
        )
        only = policy.model_copy(update={"checks": queries})
        for obs in ctx.metrics_provider.observe_checks(only, ctx.config.metrics, probe, now):
            if obs.value is None:
                out.append(
                    Finding(
                        f"{name} check {obs.name!r} ({policy.name})",
                        "fail",
                        f"no data for stable {stable}: {obs.error} — query: {obs.query}",
                        "fix the metric's query or its labels (run it in Prometheus with the stable version)",
                    )
                )
            else:
                out.append(
                    Finding(f"{name} check {obs.name!r} ({policy.name})", "pass", f"stable reads {obs.value:.4g}")
                )
    return out
