"""Feeds due work into RQ: release ticks, hook delivery attempts, replicas work after a release and fleets' looks.

The `due` sorted set in Redis is the source of truth for what must run and when. One
scheduler leads at a time (a Redis lease; every worker runs a standby). Each due item is
pushed a lease into the future as it is enqueued, so if the worker running it dies, the
item comes due again and is retried: nothing is lost, and ticks are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from rq import Queue

from app.store import Store, keys
from workers.retention import RETENTION_EVERY

log = logging.getLogger("sluice.scheduler")
QUEUE_NAME = "sluice"
# How long a claimed item waits before it is enqueued again: a worker that died with it loses it
# for this long. The release lease (workers/tick.py LEASE_TTL) is as long, so a dead worker's
# release is picked up after about one lease; a running batch renews its claims (run_ticks), and a
# tick enqueued twice meanwhile is harmless (the second finds the lease held or the seq moved on).
LEASE_SECONDS = 10.0
LEADER_TTL = 5.0
POLL_SECONDS = 0.1
# Ticks due together go in one RQ job (see workers.tick.run_ticks); small enough that several
# workers share a burst, large enough that RQ's per-job cost is spread.
TICK_BATCH = 16
# Backpressure: at most this many jobs wait in the queue, and a poll claims only what fits in the
# room left. An item that waited in the queue past its claim (LEASE_SECONDS) would come due and be
# enqueued a second time, and under a backlog those duplicates grew the queue further; left in `due`,
# work waits there just the same. 16 jobs of 16 ticks is ~1 to 3 s of a worker's ticks: well inside a claim.
MAX_QUEUED_JOBS = 16


def enqueue_due(store: Store, queue: Queue, now: float | None = None) -> int:
    """Enqueue what is due now and fits in the queue's room, ticks in batches; returns how many
    items were enqueued. (A claim of hook deliveries, one job each, may overshoot the room once.)"""
    room = MAX_QUEUED_JOBS - queue.count
    if room <= 0:
        return 0
    members = store.claim_due(now if now is not None else time.time(), LEASE_SECONDS, limit=room * TICK_BATCH)
    ticks: list[tuple[str, int]] = []
    for member in members:
        kind, name, seq = keys.parse_due_member(member)
        if kind == "tick" and seq is not None:
            ticks.append((name, seq))
        elif kind == "hook":
            # One delivery per job: outside calls are slow and must not hold up ticks.
            queue.enqueue(
                "workers.deliver.run_delivery",
                name,
                job_timeout=60,
                result_ttl=60,
                failure_ttl=24 * 3600,
                description=f"deliver {name}",
            )
        elif kind == "scale":
            # Replicas after a release ended (app/release/scaling.py): rare, one per job like a delivery.
            queue.enqueue(
                "workers.scale.run_scale",
                name,
                job_timeout=120,
                result_ttl=60,
                failure_ttl=24 * 3600,
                description=f"replicas after release {name}",
            )
        elif kind == "fleet":
            # A fleet's look at its waves (app/release/fleets.py): starts waves, ends the fleet.
            queue.enqueue(
                "workers.fleet_tick.run_fleet_tick",
                name,
                job_timeout=120,
                result_ttl=60,
                failure_ttl=24 * 3600,
                description=f"fleet {name}",
            )
        else:
            log.error("unknown due item %r; dropping it", member)
            store.unschedule(member)
    for i in range(0, len(ticks), TICK_BATCH):
        batch = ticks[i : i + TICK_BATCH]
        queue.enqueue(
            "workers.tick.run_ticks",
            batch,
            job_timeout=60 + 5 * len(batch),
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"{len(batch)} tick(s): " + ", ".join(f"{r}#{s}" for r, s in batch[:3]),
        )
    return len(members)


class Scheduler(threading.Thread):
    """Background thread: lead if no one else does, and move due items into the queue."""

    def __init__(self, store: Store, queue: Queue):
        super().__init__(name="sluice-scheduler", daemon=True)
        self.store, self.queue = store, queue
        self.token = uuid.uuid4().hex
        self.stopping = threading.Event()

    def run(self) -> None:
        leading = False
        last_lease = 0.0
        last_retention = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() - last_lease > LEADER_TTL / 3:
                    was = leading
                    leading = self.store.try_lead("scheduler", self.token, LEADER_TTL)
                    last_lease = time.monotonic()
                    if leading and not was:
                        log.info("scheduler: leading")
                if leading:
                    enqueue_due(self.store, self.queue)
                    last_retention = self._maybe_enqueue_retention(last_retention)
            except Exception:  # noqa: BLE001 - keep scheduling through Redis hiccups
                log.exception("scheduler: error; retrying")
                leading = False
                time.sleep(1)
            self.stopping.wait(POLL_SECONDS)

    def _maybe_enqueue_retention(self, last: float) -> float:
        """Every RETENTION_EVERY seconds, the retention job (workers/retention.py), as an RQ job so
        that deleting never holds up scheduling. Returns when it was last enqueued."""
        if time.monotonic() - last < RETENTION_EVERY and last:
            return last
        self.queue.enqueue(
            "workers.retention.run_retention",
            job_timeout=600,
            result_ttl=3600,
            failure_ttl=24 * 3600,
            description="retention: delete finished releases past SLUICE_RETENTION",
        )
        return time.monotonic()
