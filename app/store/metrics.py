"""Sluice's own metrics in Redis: counters and histograms that workers write and the web process
reads back at scrape time, and the gauges computed from the store (see app/telemetry/metrics.py for why).

Histograms are stored per bucket (not cumulative): field `b:<upper bound>`, plus `sum` and `count`;
a labelled series prefixes each field with its label values (`<values>\x1fb:<bound>`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from app.store import keys

SEP = "\x1f"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MetricsStore:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._lock = threading.Lock()
        self._held: tuple[list[Any], list[Any]] | None = None  # (counts, observations) while batched

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Within, `add` (from any thread) only collects; all of it is written in one round trip at the
        end. A batch of ticks (workers/tick.py `run_ticks`) writes its metrics once instead of three
        times a tick. A worker that dies inside loses the batch's increments: these are telemetry
        counters (as a crashed process's own Prometheus counters would be), never records."""
        with self._lock:
            outer = self._held is not None
            if not outer:
                self._held = ([], [])
        if outer:  # already batching: the outermost batch writes it all
            yield
            return
        try:
            yield
        finally:
            with self._lock:
                held, self._held = self._held, None
            if held and (held[0] or held[1]):
                self._write(*held)

    def add(
        self,
        counts: Iterable[tuple[str, Sequence[str]]] = (),
        observations: Iterable[tuple[str, Sequence[str], str, float]] = (),
    ) -> None:
        """In one round trip: +1 on each (counter, label values), and each (histogram, label values,
        bucket, value). Inside `batched()`, at its end."""
        with self._lock:
            if self._held is not None:
                self._held[0].extend(counts)
                self._held[1].extend(observations)
                return
        self._write(counts, observations)

    def _write(
        self,
        counts: Iterable[tuple[str, Sequence[str]]],
        observations: Iterable[tuple[str, Sequence[str], str, float]],
    ) -> None:
        """One pipeline; the same field's increments are added up first (a batch's ticks mostly
        count the same few fields: one HINCRBY by n, not n of them)."""
        increments: Counter[tuple[str, str]] = Counter()
        sums: dict[tuple[str, str], float] = {}
        for name, labels in counts:
            increments[(keys.metrics_counter(name), SEP.join(labels))] += 1
        for name, labels, bucket, value in observations:
            key, prefix = keys.metrics_histogram(name), "".join(f"{v}{SEP}" for v in labels)
            increments[(key, prefix + bucket)] += 1
            increments[(key, prefix + "count")] += 1
            sums[(key, prefix + "sum")] = sums.get((key, prefix + "sum"), 0.0) + value
        pipe = self.r.pipeline(transaction=False)
        for (key, field), n in increments.items():
            pipe.hincrby(key, field, n)
        for (key, field), total in sums.items():
            pipe.hincrbyfloat(key, field, total)
        pipe.execute()

    def counter(self, name: str) -> dict[tuple[str, ...], float]:
        """label values -> count."""
        raw = self.r.hgetall(keys.metrics_counter(name)) or {}
        return {tuple(_text(field).split(SEP)): float(value) for field, value in raw.items()}

    def histogram(self, name: str) -> dict[str, float]:
        """`b:<bound>` | `sum` | `count` -> value (an unlabelled histogram)."""
        return self.histogram_series(name).get((), {})

    def histogram_series(self, name: str) -> dict[tuple[str, ...], dict[str, float]]:
        """label values -> (`b:<bound>` | `sum` | `count` -> value)."""
        series: dict[tuple[str, ...], dict[str, float]] = {}
        for field, value in (self.r.hgetall(keys.metrics_histogram(name)) or {}).items():
            *labels, part = _text(field).split(SEP)
            series.setdefault(tuple(labels), {})[part] = float(value)
        return series

    def releases_by_state(self, states: Sequence[str]) -> Counter[str]:
        """How many stored releases are in each state: the size of each state's listing index (one
        round trip, whatever the number of releases)."""
        pipe = self.r.pipeline(transaction=False)
        for state in states:
            pipe.zcard(keys.release_index(state=state))
        return Counter({state: int(n) for state, n in zip(states, pipe.execute(), strict=True)})

    def queue_depths(self, now: float | None = None) -> dict[str, int]:
        """`enqueued` RQ jobs, `due` members already due, `scheduled` members at all."""
        now = time.time() if now is None else now
        return {
            "enqueued": int(self.r.llen(keys.RQ_QUEUE)),
            "due": int(self.r.zcount(keys.DUE, "-inf", now)),
            "scheduled": int(self.r.zcard(keys.DUE)),
        }
