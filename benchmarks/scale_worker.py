"""`sluice worker` for the scale benchmark: an instant in-memory router, and every tick timed.

Only the router is replaced (Sluice's own Router interface, not a library), so what is
measured is Sluice's cost per tick: Redis, RQ, decide, and its HTTP calls to Prometheus
(served by a static nginx stub). The tick's due time comes from its batch, which read the
releases already, so timing a tick costs no Redis command of its own.
"""

from __future__ import annotations

import json
import threading
import time

import workers.tick as tick_module
from app.context import get_context
from integrations.routers.interface import VersionHealth
from workers.tick import TickBatch
from workers.worker import run_worker

_real_run_tick = tick_module.run_tick
_samples: list[list[float | None]] = []
_lock = threading.Lock()


class InstantRouter:
    """Keeps each service's weights, as a real router does: a router that forgot them would have
    every tick find them drifted and set them again (app/release/drift.py), which is not a tick's
    ordinary cost."""

    def __init__(self) -> None:
        self.weights: dict[str, dict[str, int]] = {}

    def get_weights(self, service):
        return dict(self.weights.get(service.name, {}))

    def set_weights(self, service, weights):
        self.weights[service.name] = dict(weights)
        return dict(weights)

    def health(self, service, version, *args, **kwargs):
        return VersionHealth(True, "UP")


def timed_run_tick(release_id: str, seq: int, due_at: float | None = None, batch: TickBatch | None = None) -> str:
    ctx = get_context()
    started = time.time()
    if due_at is None:  # not from a batch, which read its releases already: one extra GET
        release = ctx.store.get(release_id)
        due_at = release.next_tick_at if release and release.seq == seq else None
    cpu0, t0 = time.thread_time(), time.perf_counter()
    result = _real_run_tick(release_id, seq, due_at, batch)
    duration, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    # The first tick's due time was set by the benchmark driver, not recorded on the release.
    lag = started - due_at if due_at else None
    with _lock:
        _samples.append([started, lag, duration, cpu])
        if len(_samples) >= 200:
            _flush(ctx)
    return result


def _flush(ctx) -> None:
    ctx.store.r.rpush("bench:ticks", *[json.dumps(s) for s in _samples])
    _samples.clear()


def main() -> None:
    ctx = get_context()
    for app in ctx.config.applications:
        ctx._routers[app.name] = InstantRouter()
    tick_module.run_tick = timed_run_tick  # RQ resolves "workers.tick.run_tick" when it runs a job

    def flusher() -> None:
        while True:
            time.sleep(1)
            with _lock:
                if _samples:
                    _flush(ctx)

    threading.Thread(target=flusher, daemon=True).start()
    run_worker()


if __name__ == "__main__":
    main()
