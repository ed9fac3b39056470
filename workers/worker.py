"""`sluice worker`: an RQ worker that runs ticks and deliveries, with a scheduler thread beside it.

It runs jobs in-process (RQ's SimpleWorker) rather than forking per job: a tick is a few
milliseconds of work, and a fork per tick would cost more than the tick.

Redis outages do not end the process: RQ's work loop quits on some Redis errors (a timeout, a
`ConnectionError` from its heartbeat, and its teardown raises too), so `run_worker` starts a new
RQ worker after a backoff until it is asked to stop. Due ticks resume from the `due` schedule
when Redis is back (the scheduler thread retries on its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.exceptions import StopRequested

from app.context import Context, get_context
from app.store import queues as rq_queues
from app.store.connection import connect
from app.store.jobs import JOBS_QUEUE
from app.store.queues import URGENT_QUEUE
from workers import liveness
from workers.scheduler import QUEUE_NAME, Scheduler

log = logging.getLogger("sluice.worker")
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
HEALTHY_RUN = 60.0  # a work loop that ran this long resets the backoff


def work_until_stopped(
    make_worker: Callable[[], SimpleWorker],
    burst: bool = False,
    logging_level: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run RQ workers one after another until one stops on request (a signal), or a burst ends:
    a work loop that ends on a Redis error is restarted after a backoff (1 s doubling to 30 s)."""
    backoff = BACKOFF_FIRST
    while True:
        liveness.beat("worker")  # each new RQ work loop, e.g. after a Redis outage ended the last one
        worker: SimpleWorker | None = None
        started = time.monotonic()
        try:
            # Inside the try: building an RQ worker asks Redis at once, and Redis may still be down
            # when a backoff ends; that is one more backoff, not the end of the process.
            worker = make_worker()
            worker.work(burst=burst, logging_level=logging_level)
            if burst or worker._shutdown_requested_date is not None:
                return
            problem = "RQ's work loop ended (Redis unreachable?)"
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if _stopping(worker):
                return  # asked to stop, and Redis is gone too: nothing left to clean up
            problem = f"Redis unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if time.monotonic() - started > HEALTHY_RUN:
            backoff = BACKOFF_FIRST
        log.error("worker: %s; starting again in %.0f s", problem, backoff)
        try:
            sleep(backoff)
        except StopRequested:  # a signal during the backoff, through RQ's handler
            return
        if _stopping(worker):
            return
        backoff = min(backoff * 2, BACKOFF_MAX)


def _stopping(worker: SimpleWorker | None) -> bool:
    return worker is not None and worker._shutdown_requested_date is not None


class LiveWorker(SimpleWorker):
    """RQ's SimpleWorker that also beats the liveness file (workers/liveness.py) at each RQ heartbeat:
    before each wait for a job (RQ waits at most 405 s by default) and after each job."""

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        liveness.beat("worker")
        super().heartbeat(timeout, pipeline)


# What a worker serves: `all` (the default), `releases` (ticks and hook deliveries, with the
# scheduler) or `jobs` (replays and backtests). A backtest takes seconds of CPU, and a worker runs
# one job at a time: with live releases, give jobs their own worker so no tick waits behind one.
SERVES = ("all", "releases", "jobs")


def rq_worker(ctx: Context, serves: str = "all") -> SimpleWorker:
    """RQ's work loop for `serves`, on a Redis client of its own. RQ waits for a job with BLPOP (up to
    405 s) and raises its client's socket timeout above that: on the store's client the connections
    already open kept the store's 5 s, so every quiet wait ended in a timeout and RQ's backoff (up to
    60 s) before it listened again, and the store's new connections got RQ's 415 s
    (tests/workers/test_idle_worker.py)."""
    if serves not in SERVES:
        raise ValueError(f"serves must be one of {SERVES}, not {serves!r}")
    redis = connect(ctx.redis_url)
    # JSON, and only Sluice's own jobs (app/store/queues.py): nothing from Redis is unpickled.
    # A promote, abort or rollback the web recorded and handed over (app/release/handoff.py) before
    # anything else; then ticks and deliveries; replay and backtest jobs (app/analysis/jobs.py) when
    # none is waiting. A jobs-only worker takes handed-over acts too: they take milliseconds.
    names = {"all": [URGENT_QUEUE, QUEUE_NAME, JOBS_QUEUE], "releases": [URGENT_QUEUE, QUEUE_NAME]}
    queues = [rq_queues.queue(name, redis) for name in names.get(serves, [URGENT_QUEUE, JOBS_QUEUE])]
    return rq_queues.worker(queues, redis, cls=LiveWorker)


def run_worker(burst: bool = False, with_scheduler: bool = True, serves: str = "all") -> None:
    if serves not in SERVES:
        raise ValueError(f"serves must be one of {SERVES}, not {serves!r}")
    ctx = get_context()
    # The scheduler enqueues on the store's client (its 5 s timeout); RQ's loop has its own.
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    scheduler = Scheduler(ctx.store, queue) if with_scheduler and serves != "jobs" else None
    if scheduler:
        scheduler.start()
    try:
        work_until_stopped(
            lambda: rq_worker(ctx, serves),
            burst=burst,
            logging_level=logging.getLevelName(logging.getLogger().level),
        )
    finally:
        if scheduler:
            scheduler.stopping.set()
