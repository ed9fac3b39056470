"""The proxy's view on Kubernetes: what the ingress or mesh answered each version, read from its own
series in the metrics backend (integrations/kubernetes/proxy_series.py), as the router's counts.

The application's metrics miss what never reached it: connections refused, reset or timed out, the
502/503/504 a proxy made up. HAProxy's router counts those itself; a Kubernetes router's proxy exports
them, so they are read here over the step's span and the judge counts them as HAProxy's.
"""

from __future__ import annotations

import logging

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.services import ServiceConfig
from app.core.models import EvidenceObservation, Release
from integrations.metrics.interface import ProxyCounter

log = logging.getLogger("sluice.tick")


def observe_proxy(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    release: Release,
    now: float,
    evidence: EvidenceObservation,
) -> None:
    """Fill both versions' router counts from the proxy's series since the step's weights were
    confirmed (the same span for both), when the router has a proxy whose series Prometheus keeps."""
    since = release.step_started_at
    provider = ctx.metrics_provider
    proxy_query = getattr(ctx.router(app), "proxy_query", None)
    if since is None or now <= since or proxy_query is None or not isinstance(provider, ProxyCounter):
        return
    versions = [release.target_version, release.source_version]
    try:
        query = proxy_query(svc, versions)
    except ValueError as exc:  # a name the proxy's query refuses: say so, judge on the app's metrics
        log.warning("cannot ask for the proxy's counts: %s", exc, extra={"release_id": release.id})
        return
    if query is None:
        return
    seen, why = provider.proxy_counts(query, versions, since, now)
    if seen is None:
        # Expected until the proxy exports metrics (or with other labels): the app's metrics judge.
        log.debug("no proxy counts from %s: %s", query.source, why, extra={"release_id": release.id})
        return
    evidence.candidate.router, evidence.stable.router = (
        seen.get(release.target_version),
        seen.get(release.source_version),
    )
