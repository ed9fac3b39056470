"""An idle worker waits for work without Redis errors, and RQ does not touch the store's client.

RQ's work loop waits for a job with BLPOP for up to 405 s and raises its client's socket timeout
above that wait. Built on the store's client (5 s socket timeout), the connections already open kept
5 s: every wait longer than 5 s without a job ended in "Timeout reading from socket", and RQ slept
its backoff (doubling to 60 s) before listening again, so the first release after a quiet spell
waited up to a minute for its first tick (seen in the scenario suite: a 100%-errors version
rolled back after 143 s instead of 3 s). And the new connections of the store's pool got RQ's
415 s timeout: a stalled Redis would then hold a tick for seven minutes.
"""

from __future__ import annotations

import logging

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.store.connection import SOCKET_TIMEOUT
from tests.support.fakes import config_text
from workers.worker import rq_worker

pytestmark = pytest.mark.integration


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int, about: str) -> list[str]:
        """What was logged at `level` or above naming `about` (RQ's logger is shared by every worker
        of the process: an earlier test's may still log about its own, stopped, Redis)."""
        return [m for r in self.records if r.levelno >= level and about in (m := r.getMessage())]


def test_an_idle_worker_waits_without_redis_errors_and_leaves_the_stores_timeout(redis_url: str) -> None:
    ctx = Context(parse_config(config_text()), redis_url=redis_url)
    # The store's pool holds a few open connections, as a running worker's (scheduler, ticks) does.
    pool = ctx.store.r.connection_pool
    opened = [pool.get_connection() for _ in range(4)]
    for connection in opened:
        pool.release(connection)
    worker = rq_worker(ctx, serves="all")
    assert ctx.store.r.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT
    seen = Records()
    worker.log.addHandler(seen)  # RQ's own logger (another test's setup may stop it propagating)
    try:
        # Idle longer than the store's socket timeout; RQ's own idle limit ends the loop.
        worker.work(max_idle_time=int(SOCKET_TIMEOUT) + 3, logging_level="INFO")
    finally:
        worker.log.removeHandler(seen)
    assert seen.messages(logging.INFO, worker.name), "the worker's own log was not captured"
    assert not seen.messages(logging.ERROR, worker.name), seen.messages(logging.ERROR, worker.name)
    assert ctx.store.r.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT
    assert ctx.store.r.ping()
