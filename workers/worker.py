"""`sluice worker`: an RQ worker that runs ticks and deliveries, with a scheduler thread beside it.

It runs jobs in-process (RQ's SimpleWorker) rather than forking per job: a tick is a few
milliseconds of work, and a fork per tick would cost more than the tick.
"""

from __future__ import annotations

import logging

from rq import Queue, SimpleWorker

from app.context import get_context
from workers.scheduler import QUEUE_NAME, Scheduler


def run_worker(burst: bool = False, with_scheduler: bool = True) -> None:
    ctx = get_context()
    redis = ctx.store.r
    queue = Queue(QUEUE_NAME, connection=redis)
    scheduler = Scheduler(ctx.store, queue) if with_scheduler else None
    if scheduler:
        scheduler.start()
    try:
        worker = SimpleWorker([queue], connection=redis)
        worker.work(burst=burst, logging_level=logging.getLevelName(logging.getLogger().level))
    finally:
        if scheduler:
            scheduler.stopping.set()
