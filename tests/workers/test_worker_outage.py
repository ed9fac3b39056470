"""The worker process survives a Redis outage (issue 12): RQ's work loop ends on a Redis error
(and its teardown raises too); `work_until_stopped` starts a new one after a backoff, which runs
the jobs enqueued once Redis is back, until a signal asks it to stop."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, SimpleWorker

from app.cli.demo.stack import Process, port_open, start_redis
from workers.worker import work_until_stopped

pytestmark = pytest.mark.integration

STATE: dict[str, object] = {}


def outage_job() -> str:
    """Redis goes away while a job runs: RQ's bookkeeping after it fails."""
    proc = STATE["redis"]
    assert isinstance(proc, Process)
    proc.stop()
    STATE["outage"] = True
    return "done"


def after_outage_job() -> str:
    STATE["after"] = True
    os.kill(os.getpid(), signal.SIGTERM)  # a warm shutdown, as a supervisor would ask for
    return "done"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    proc, url = start_redis(tmp_path)
    try:
        yield proc, url
    finally:
        proc.stop()


def test_worker_starts_again_after_redis_comes_back(own_redis: tuple[Process, str]) -> None:
    proc, url = own_redis
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    STATE.clear()
    STATE["redis"] = proc
    conn = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    queue = Queue("outage-test", connection=conn)
    queue.enqueue(outage_job)
    started: list[SimpleWorker] = []
    naps: list[float] = []

    def make_worker() -> SimpleWorker:
        started.append(SimpleWorker([queue], connection=conn))
        return started[-1]

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:  # the outage ends during the first backoff
            proc.start()
            while not port_open(port):
                threading.Event().wait(0.05)
            queue.enqueue(after_outage_job)

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    failsafe = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGTERM))
    failsafe.start()
    try:
        work_until_stopped(make_worker, sleep=nap)
    finally:
        failsafe.cancel()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        conn.close()
    assert STATE.get("outage") and STATE.get("after"), STATE
    assert len(started) >= 2 and naps and naps[0] == 1.0
    assert naps == sorted(naps)  # backing off


def test_worker_waits_out_redis_still_down_when_its_loop_restarts(own_redis: tuple[Process, str]) -> None:
    """Redis is still down when the backoff ends: building the next RQ worker fails too (it asks Redis
    at once), and the process must back off again rather than exit."""
    proc, url = own_redis
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    STATE.clear()
    STATE["redis"] = proc
    conn = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    queue = Queue("outage-test-2", connection=conn)
    queue.enqueue(outage_job)
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:  # down through the first backoff and the restart after it
            proc.start()
            while not port_open(port):
                threading.Event().wait(0.05)
            queue.enqueue(after_outage_job)

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    failsafe = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGTERM))
    failsafe.start()
    try:
        work_until_stopped(lambda: SimpleWorker([queue], connection=conn), sleep=nap)
    finally:
        failsafe.cancel()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        conn.close()
    assert STATE.get("outage") and STATE.get("after"), STATE
    assert naps[:2] == [1.0, 2.0]  # the failed restart backed off again, longer
