"""The metric provider interface: what a release's checks and its judge ask a metrics backend.

Nothing here raises for a bad query or an unreachable backend: the reason goes into the
observation's (or the counts') `error`, so a tick always decides. Implementations:
integrations/prometheus/provider.py; the registry is integrations/registry/metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from app.core.config.policy import PolicyConfig
from app.core.models import CheckObservation, Release, ResponseCounts, RouterCounts

if TYPE_CHECKING:  # the routers' side of the query; the metrics and routers layers do not import each other
    from integrations.routers.proxy_view import ProxyQuery


class MetricProvider(Protocol):
    def observe_checks(
        self, policy: PolicyConfig, metrics: dict[str, Any], release: Release, at: float
    ) -> list[CheckObservation]:
        """One observation per check of the policy at time `at`: the candidate's value over the
        policy's window and, for a check with max_over_stable, the stable version's."""
        ...

    def step_requests(self, release: Release, at: float, since: float) -> float | None:
        """Requests the candidate served between `since` and `at`; None if unknown."""
        ...

    def response_counts(self, service: str, version: str, namespace: str, start: float, end: float) -> ResponseCounts:
        """One version's responses over [start, end]: total, by status class, latency buckets."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BatchPrimer(Protocol):
    """Optional: ask once for a batch of releases before their ticks run (Prometheus: one grouped
    query per check instead of one per release). `prime([], metrics, 0)` forgets the answers."""

    def prime(self, work: list[tuple[Release, PolicyConfig]], metrics: dict[str, Any], at: float) -> int: ...


class CountsSpan(NamedTuple):
    """One version's counts a batch's tick will ask: over [start, end], or [start, the batch's
    time] when `end` is None (the step's evidence, which ends when the tick runs)."""

    service: str
    version: str
    namespace: str
    start: float
    end: float | None = None


@runtime_checkable
class CountsPrimer(Protocol):
    """Optional: the response counts a batch's ticks will ask, in one request (Prometheus:
    integrations/prometheus/packed_counts.py), each a `CountsSpan` (a plain (service, version,
    namespace, start) tuple: the span ends at `at`). `prime_counts([], 0)` forgets them."""

    def prime_counts(self, spans: Sequence[tuple[str, str, str, float] | CountsSpan], at: float) -> int: ...


@runtime_checkable
class ProxyCounter(Protocol):
    """Optional: count a router's proxy's answers to each version over [start, end] from the proxy's
    own series (integrations/routers/proxy_view.py). (counts per version, None) or (None, why not)."""

    def proxy_counts(
        self, query: ProxyQuery, versions: list[str], start: float, end: float
    ) -> tuple[dict[str, RouterCounts] | None, str | None]: ...
