"""Sluice's own metrics, shared by every process through Redis.

Ticks and hook deliveries run in worker processes; `/metrics` is served by whichever
gunicorn worker of the web process gets the scrape. Counters kept in one process's memory
would be partial and would reset on every restart, so workers write them to Redis (HINCRBY /
HINCRBYFLOAT, a few microseconds in the same round trip as their work) and the web process
reads them back in a custom collector at scrape time. Gauges (releases by state, queue depth)
are computed from the store at scrape time, so they are never stale.

Keys (prefix `sluice:metrics:`):
  counter:<name>  hash "<label values joined by \\x1f>" -> count
  hist:<name>     hash "b:<upper bound>" -> observations in that bucket (not cumulative),
                  "sum", "count"

Recording never raises: a metrics write that fails must not fail a tick.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from app.models import CheckResult, Release

log = logging.getLogger("sluice.metrics")
PREFIX = "sluice:metrics:"
SEP = "\x1f"
RQ_QUEUE_KEY = "rq:queue:sluice"
STATES = ("pending", "running", "paused", "succeeded", "failed", "aborted")

# name -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "evaluations": ("Check evaluations, by check and verdict.", ("check", "verdict")),
    "decisions": ("Release decisions recorded, by kind (start, hold, advance, promote, fail, abort...).", ("kind",)),
    "releases_finished": ("Releases that reached a final state, by state.", ("state",)),
    "hook_deliveries": ("Hook delivery attempts, by hook and outcome (delivered, failed, retry).", ("hook", "outcome")),
    "ticks": ("Release ticks run, by result (decided, stale, busy, gone, idle).", ("result",)),
}
# name -> (help, bucket upper bounds in seconds)
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "tick_lag_seconds": (
        "How late a release tick started after the time it was scheduled for.",
        (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    ),
    "tick_duration_seconds": (
        "How long a release tick took (observe, decide, record, change the router).",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    ),
}


def _bucket(bounds: Sequence[float], value: float) -> str:
    for b in bounds:
        if value <= b:
            return f"b:{b}"
    return "b:+Inf"


def incr(r: redis.Redis, name: str, labels: Sequence[str], by: int = 1, pipe: Any = None) -> None:
    target = pipe if pipe is not None else r
    target.hincrby(PREFIX + "counter:" + name, SEP.join(labels), by)


def observe(r: redis.Redis, name: str, value: float, pipe: Any = None) -> None:
    bounds = HISTOGRAMS[name][1]
    p = pipe if pipe is not None else r.pipeline(transaction=False)
    key = PREFIX + "hist:" + name
    p.hincrby(key, _bucket(bounds, value), 1)
    p.hincrbyfloat(key, "sum", value)
    p.hincrby(key, "count", 1)
    if pipe is None:
        p.execute()


def record_decision(r: redis.Redis, before: Release, after: Release, kind: str, results: Iterable[CheckResult]) -> None:
    """After a decision is committed: its evaluations, its kind, and the release's end if it ended."""
    try:
        pipe = r.pipeline(transaction=False)
        for res in results:
            incr(r, "evaluations", (res.name, res.verdict), pipe=pipe)
        incr(r, "decisions", (kind,), pipe=pipe)
        if after.terminal and not before.terminal:
            incr(r, "releases_finished", (after.state,), pipe=pipe)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not record decision metrics", exc_info=True)


def record_delivery(r: redis.Redis, hook: str, outcome: str) -> None:
    try:
        incr(r, "hook_deliveries", (hook, outcome))
    except redis.RedisError:
        log.warning("could not record delivery metrics", exc_info=True)


@contextmanager
def timed_tick(r: redis.Redis, release_id: str, seq: int) -> Iterator[None]:
    """Measure a tick: its lag behind the time it was scheduled for, and its duration."""
    started = time.time()
    lag = None
    try:
        raw = r.get("sluice:release:" + release_id)
        data = json.loads(raw) if raw else {}
        if data.get("seq") == seq and data.get("next_tick_at"):
            lag = max(0.0, started - float(data["next_tick_at"]))
    except (redis.RedisError, ValueError, TypeError):
        pass
    try:
        yield
    finally:
        try:
            pipe = r.pipeline(transaction=False)
            if lag is not None:
                observe(r, "tick_lag_seconds", lag, pipe=pipe)
            observe(r, "tick_duration_seconds", time.time() - started, pipe=pipe)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not record tick metrics", exc_info=True)


def count_tick(r: redis.Redis, outcome: str) -> None:
    """Classify a tick's result string ("hold: ...", "stale: ...") into a bounded label."""
    head = outcome.split(":", 1)[0].strip()
    result = head if head in ("stale", "busy", "gone") else ("idle" if "nothing to evaluate" in outcome else "decided")
    with suppress(redis.RedisError):
        incr(r, "ticks", (result,))


# --- the web side: read it all back at scrape time ----------------------------------------------------


class RedisCollector(Collector):
    """Exposes the counters and histograms workers wrote to Redis, plus gauges computed now."""

    def __init__(self, client_factory: Any):
        self._client = client_factory

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("sluice_up", "1 when the web process could read Sluice's state from Redis.")
        try:
            r: redis.Redis = self._client()
            metrics = [*self._counters(r), *self._histograms(r), *self._gauges(r)]
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        yield from metrics
        up.add_metric([], 1)
        yield up

    def _counters(self, r: redis.Redis) -> Iterator[Metric]:
        for name, (doc, labels) in COUNTERS.items():
            family = CounterMetricFamily("sluice_" + name, doc, labels=list(labels))
            for field, value in (r.hgetall(PREFIX + "counter:" + name) or {}).items():
                values = _text(field).split(SEP)
                if len(values) == len(labels):
                    family.add_metric(values, float(value))
            yield family

    def _histograms(self, r: redis.Redis) -> Iterator[Metric]:
        for name, (doc, bounds) in HISTOGRAMS.items():
            raw = {_text(k): float(v) for k, v in (r.hgetall(PREFIX + "hist:" + name) or {}).items()}
            cumulative, buckets = 0.0, []
            for b in bounds:
                cumulative += raw.get(f"b:{b}", 0.0)
                buckets.append((_le(b), cumulative))
            cumulative += raw.get("b:+Inf", 0.0)
            buckets.append(("+Inf", cumulative))
            family = HistogramMetricFamily("sluice_" + name, doc)
            family.add_metric([], buckets, sum_value=raw.get("sum", 0.0))
            yield family

    def _gauges(self, r: redis.Redis) -> Iterator[Metric]:
        by_state = dict.fromkeys(STATES, 0)
        ids = r.zrange("sluice:releases", 0, -1)
        for i in range(0, len(ids), 500):
            for raw in r.mget(["sluice:release:" + _text(x) for x in ids[i : i + 500]]):
                if raw:
                    state = json.loads(raw).get("state")
                    if state in by_state:
                        by_state[state] += 1
        releases = GaugeMetricFamily("sluice_releases", "Releases in Redis, by state.", labels=["state"])
        for state, n in by_state.items():
            releases.add_metric([state], n)
        yield releases
        now = time.time()
        queue = GaugeMetricFamily(
            "sluice_queue_depth",
            "Work waiting: `enqueued` jobs in the RQ queue, `due` ticks and deliveries already due "
            "but not yet enqueued, `scheduled` ticks and deliveries scheduled at all.",
            labels=["queue"],
        )
        queue.add_metric(["enqueued"], int(r.llen(RQ_QUEUE_KEY)))
        queue.add_metric(["due"], int(r.zcount("sluice:due", "-inf", now)))
        queue.add_metric(["scheduled"], int(r.zcard("sluice:due")))
        yield queue


def _le(bound: float) -> str:
    return f"{bound:g}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def registry(client_factory: Any) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RedisCollector(client_factory))
    return reg
