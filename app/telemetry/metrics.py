"""Sluice's own metrics, shared by every process through Redis.

Ticks and hook deliveries run in worker processes; `/metrics` is served by whichever
gunicorn worker of the web process gets the scrape. Counters kept in one process's memory
would be partial and would reset on every restart, so workers write them to Redis (HINCRBY /
HINCRBYFLOAT, a few microseconds in the same round trip as their work) and the web process
reads them back in a custom collector at scrape time. Gauges (releases by state, queue depth)
are computed from the store at scrape time, so they are never stale.

Where they live in Redis is the store's business (app/store/metrics.py).

Recording never raises: a metrics write that fails must not fail a tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from app.core.models import CheckResult, Release
from app.store import StoreUnavailable
from app.telemetry import delivery

if TYPE_CHECKING:
    from app.store import Store

log = logging.getLogger("sluice.metrics")
STATES = ("pending", "running", "paused", "baking", "succeeded", "failed", "aborted")

# name -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "evaluations": ("Check evaluations, by check and verdict.", ("check", "verdict")),
    "decisions": ("Release decisions recorded, by kind (start, hold, advance, promote, fail, abort...).", ("kind",)),
    "releases_finished": ("Releases that reached a final state, by state.", ("state",)),
    "hook_deliveries": ("Hook delivery attempts, by hook and outcome (delivered, failed, retry).", ("hook", "outcome")),
    "ticks": ("Release ticks run, by result (decided, idle, waiting, stale, busy, lost, gone).", ("result",)),
    "circleci_unmatched_deploys": (
        "CircleCI deploy jobs (or workflows) ignored because no circleci.projects slug matched, by slug.",
        ("project",),
    ),
    delivery.COUNTER[0]: delivery.COUNTER[1:],
}
# name -> (help, bucket upper bounds in seconds, label names)
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...], tuple[str, ...]]] = {
    "tick_lag_seconds": (
        "How late a release tick started after the time it was scheduled for.",
        (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
        (),
    ),
    "tick_duration_seconds": (
        "How long a release tick took (observe, decide, record, change the router).",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        (),
    ),
    **delivery.HISTOGRAMS,
}


def _bucket(bounds: Sequence[float], value: float) -> str:
    for b in bounds:
        if value <= b:
            return f"b:{b}"
    return "b:+Inf"


def _observation(name: str, value: float) -> tuple[str, Sequence[str], str, float]:
    return name, (), _bucket(HISTOGRAMS[name][1], value), value


def record_decision(store: Store, before: Release, after: Release, kind: str, results: Iterable[CheckResult]) -> None:
    """After a decision is committed: its evaluations, its kind, and the release's end if it ended."""
    counts: list[tuple[str, Sequence[str]]] = [("evaluations", (res.name, res.verdict)) for res in results]
    counts.append(("decisions", (kind,)))
    ended = after.terminal and not before.terminal
    if ended:
        counts.append(("releases_finished", (after.state,)))
    try:
        store.metrics.add(counts)
    except StoreUnavailable:
        log.warning("could not record decision metrics", exc_info=True)
    if ended:
        delivery.record_end(store, after)


def record_delivery(store: Store, hook: str, outcome: str) -> None:
    try:
        store.metrics.add([("hook_deliveries", (hook, outcome))])
    except StoreUnavailable:
        log.warning("could not record delivery metrics", exc_info=True)


@contextmanager
def timed_tick(store: Store, release_id: str, seq: int, due_at: float | None = None) -> Iterator[None]:
    """Measure a tick: its lag behind the time it was scheduled for (`due_at`, when the caller read it
    already: a batch reads its releases at once), and its duration."""
    started = time.time()
    lag = None
    try:
        if due_at is None:
            release = store.get(release_id)
            if release is not None and release.seq == seq and release.next_tick_at:
                due_at = release.next_tick_at
        if due_at:
            lag = max(0.0, started - due_at)
    except (StoreUnavailable, ValueError):
        pass
    try:
        yield
    finally:
        observations = [_observation("tick_duration_seconds", time.time() - started)]
        if lag is not None:
            observations.insert(0, _observation("tick_lag_seconds", lag))
        try:
            store.metrics.add(observations=observations)
        except StoreUnavailable:
            log.warning("could not record tick metrics", exc_info=True)


def count_tick(store: Store, result: str) -> None:
    """Count a tick by its result (workers.tick.TickKind: a bounded label)."""
    try:
        store.metrics.add([("ticks", (result,))])
    except StoreUnavailable:
        log.warning("could not record tick metrics", exc_info=True)


def count_unmatched_deploy(store: Store, slug: str) -> None:
    """A CircleCI deploy ignored because its project slug matched no configured project."""
    try:
        store.metrics.add([("circleci_unmatched_deploys", (slug[:128],))])
    except StoreUnavailable:
        log.warning("could not record the unmatched deploy metric", exc_info=True)


# --- the web side: read it all back at scrape time ----------------------------------------------------


class StoreCollector(Collector):
    """Exposes the counters and histograms workers wrote to the store, plus gauges computed now."""

    def __init__(self, store_factory: Any):
        self._store = store_factory

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("sluice_up", "1 when the web process could read Sluice's state from Redis.")
        try:
            store: Store = self._store()
            metrics = [*self._counters(store), *self._histograms(store), *self._gauges(store)]
        except StoreUnavailable as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        yield from metrics
        up.add_metric([], 1)
        yield up

    def _counters(self, store: Store) -> Iterator[Metric]:
        for name, (doc, labels) in COUNTERS.items():
            family = CounterMetricFamily("sluice_" + name, doc, labels=list(labels))
            for values, value in store.metrics.counter(name).items():
                if len(values) == len(labels):
                    family.add_metric(list(values), value)
            yield family

    def _histograms(self, store: Store) -> Iterator[Metric]:
        for name, (doc, bounds, labels) in HISTOGRAMS.items():
            family = HistogramMetricFamily("sluice_" + name, doc, labels=list(labels))
            series = store.metrics.histogram_series(name)
            if not labels:
                series = {(): series.get((), {})}  # an unlabelled histogram is always there, zero or not
            for values, raw in sorted(series.items()):
                if len(values) != len(labels):
                    continue
                cumulative, buckets = 0.0, []
                for b in bounds:
                    cumulative += raw.get(f"b:{b}", 0.0)
                    buckets.append((_le(b), cumulative))
                cumulative += raw.get("b:+Inf", 0.0)
                buckets.append(("+Inf", cumulative))
                family.add_metric(list(values), buckets, sum_value=raw.get("sum", 0.0))
            yield family

    def _gauges(self, store: Store) -> Iterator[Metric]:
        by_state = store.metrics.releases_by_state(STATES)
        releases = GaugeMetricFamily("sluice_releases", "Releases in Redis, by state.", labels=["state"])
        for state in STATES:
            releases.add_metric([state], by_state.get(state, 0))
        yield releases
        queue = GaugeMetricFamily(
            "sluice_queue_depth",
            "Work waiting: `enqueued` jobs in the RQ queue, `due` ticks and deliveries already due "
            "but not yet enqueued, `scheduled` ticks and deliveries scheduled at all.",
            labels=["queue"],
        )
        for name, depth in store.metrics.queue_depths().items():
            queue.add_metric([name], depth)
        yield queue


def _le(bound: float) -> str:
    return f"{bound:g}"


def registry(store_factory: Any) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store_factory))
    return reg
