"""A batch of ticks writes its metrics once (app/store/metrics.py `batched`), with the same totals."""

from __future__ import annotations

import threading

import pytest
import redis

from app.store import Store, connect


@pytest.fixture()
def store(redis_url: str) -> Store:
    return Store(connect(redis_url))


def commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def test_a_batch_of_metrics_is_written_once_with_the_same_totals(store: Store) -> None:
    def one_tick(i: int) -> None:
        store.metrics.add([("ticks", ("decided",)), ("decisions", ("hold",))])
        store.metrics.add(observations=[("tick_duration_seconds", (), "b:0.1", 0.05 + i / 1000)])

    before = commands(store.r)
    with store.metrics.batched():
        threads = [threading.Thread(target=one_tick, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.metrics.counter("ticks") == {}  # nothing written yet
    sent = commands(store.r) - before - 1  # less the INFO that read the count
    assert store.metrics.counter("ticks") == {("decided",): 16.0}
    assert store.metrics.counter("decisions") == {("hold",): 16.0}
    histogram = store.metrics.histogram("tick_duration_seconds")
    assert histogram["b:0.1"] == 16 and histogram["count"] == 16
    assert histogram["sum"] == pytest.approx(sum(0.05 + i / 1000 for i in range(16)))
    assert sent <= 6  # one HINCRBY per field, whatever the number of ticks (was 80 commands)


def test_outside_a_batch_each_add_is_written_at_once(store: Store) -> None:
    store.metrics.add([("ticks", ("idle",))])
    assert store.metrics.counter("ticks") == {("idle",): 1.0}
