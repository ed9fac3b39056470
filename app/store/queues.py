"""RQ as Sluice uses it: JSON on the wire, and only Sluice's own jobs run.

RQ's default serializer is pickle, and unpickling runs whatever the payload names: anyone who
could write to Redis could run code in the worker, which holds the CircleCI, Slack and PagerDuty
secrets. Every queue and worker here speaks JSON (rq.serializers.JSONSerializer), so a job's
arguments are plain JSON values (a tuple comes back as a list). JSON alone is not enough: RQ
imports and calls whatever function a job names, so the worker's job class refuses any name
outside RUNNERS before it is imported. A refused job fails like any failed job (kept in RQ's
failed registry with the reason) and the worker carries on.

Redis' own password (deploy/, REDIS_URL) is the first fence; this is the second.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer

SERIALIZER = JSONSerializer
# Acts a web process that does not steer hands over (app/release/handoff.py): a promote, abort or
# rollback recorded but not yet on the router. Every worker takes this queue before any other.
URGENT_QUEUE = "sluice-urgent"
TICK_RUNNER = "workers.tick.run_ticks"
# Everything Sluice enqueues (workers/scheduler.py, app/store/jobs.py): nothing else is run.
RUNNERS = frozenset(
    {
        TICK_RUNNER,
        "workers.deliver.run_delivery",
        "workers.scale.run_scale",
        "workers.fleet_tick.run_fleet_tick",
        "workers.retention.run_retention",
        "app.analysis.jobs.run_job",
    }
)


class UnknownJob(DeserializationError):
    """A job on Sluice's queue that Sluice did not put there."""


class SluiceJob(Job):
    """An RQ job that names one of RUNNERS, called as a plain function (no instance)."""

    def _deserialize_data(self) -> None:
        super()._deserialize_data()
        name = self._func_name
        if name not in RUNNERS or self._instance is not None:
            self._func_name = None  # type: ignore[assignment]  # never imported or called
            raise UnknownJob(
                f"refused job {str(name)[:100]!r}: not one of Sluice's jobs ({', '.join(sorted(RUNNERS))})"
            )


def queue(name: str, connection: redis.Redis) -> Queue:
    """One of Sluice's RQ queues: what is enqueued is written as JSON."""
    return Queue(name, connection=connection, serializer=SERIALIZER, job_class=SluiceJob)


def worker(
    queues: list[Queue], connection: redis.Redis, cls: type[SimpleWorker] = SimpleWorker, **kwargs: Any
) -> SimpleWorker:
    """An in-process RQ worker (`cls`, e.g. workers/worker.py's LiveWorker) that reads JSON and runs only RUNNERS."""
    return cls(queues, connection=connection, serializer=SERIALIZER, job_class=SluiceJob, **kwargs)


def fetch(job_id: str, connection: redis.Redis) -> Job:
    """An RQ job read back as JSON (its data is only decoded when asked for)."""
    return SluiceJob.fetch(job_id, connection=connection, serializer=SERIALIZER)
