"""`sluice worker` for the several-workers proof (chaos/swarm.py): the real worker, scheduler and
ticks, with the router replaced by one whose state lives in Redis, so every worker process (and
every restart of one) sees the same weights, and every write to it is logged for the checks.

Only the router is replaced (Sluice's own Router interface, not a library), as benchmarks/scale_worker.py
does: what is proven is how workers share releases, not how HAProxy takes a weight.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from app.context import get_context
from app.telemetry.logs import configure_logging
from integrations.routers.interface import VersionHealth
from workers.worker import run_worker

WEIGHTS = "swarm:weights"  # service -> the weights last set, JSON
APPLIED = "swarm:applied"  # every set_weights call, in order: {service, weights, pid, at}


class RecordingRouter:
    """A router with nothing behind it but Redis: get_weights reads what set_weights last wrote."""

    def __init__(self, client: redis.Redis):
        self.r = client

    def get_weights(self, service: Any) -> dict[str, int]:
        raw = self.r.hget(WEIGHTS, service.name)
        return json.loads(raw) if raw else {}

    def set_weights(self, service: Any, weights: dict[str, int]) -> dict[str, int]:
        record = {"service": service.name, "weights": weights, "pid": os.getpid(), "at": time.time()}
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(WEIGHTS, service.name, json.dumps(weights))
        pipe.rpush(APPLIED, json.dumps(record))
        pipe.execute()
        return dict(weights)

    def health(self, service: Any, version: str, *args: Any, **kwargs: Any) -> VersionHealth:
        return VersionHealth(True, "UP")


def main() -> None:
    configure_logging()  # as `sluice worker` does (app/cli/main.py)
    ctx = get_context()
    for app in ctx.config.applications:
        ctx._routers[app.name] = RecordingRouter(ctx.store.r)
    run_worker()


if __name__ == "__main__":
    main()
