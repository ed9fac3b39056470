"""Replay and backtest jobs: their records in Redis and their place on RQ's queue.

A job is asked for over the API (app/web/jobs.py), run by a worker (app/analysis/jobs.py) and read back
until its result expires. The record (`job:<id>`) holds the input, the status and the result,
and lives for the configured result TTL. An identical request (same kind, same input) within
the dedup window gets the job already asked for: a double click runs once.

Submitting writes the record and puts the RQ job on the queue in one MULTI/EXEC (RQ's
`pipeline=`), so a job is either recorded and queued, or neither. The RQ job runs on its own
queue, `sluice-jobs`, which `sluice worker` serves after the tick queue: a due tick is taken
before a waiting backtest.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus as RQStatus

from app.store import keys, queues

JOBS_QUEUE = "sluice-jobs"  # served by workers/worker.py after the tick queue
JobKind = Literal["replay", "backtest"]
JobStatus = Literal["queued", "running", "done", "failed"]
# The worker stopped (killed, or past the RQ timeout) before the job recorded its end.
LOST = "the worker stopped before the job finished (killed, or over its time limit); ask for it again"
RUNNER = "app.analysis.jobs.run_job"  # imported by the worker by name: the web never imports the runner
TIMEOUTS = {"replay": 300, "backtest": 900}  # seconds; a backtest replays every change of up to 30 days


class Job(BaseModel):
    """A replay or backtest asked for over the API."""

    id: str
    kind: JobKind
    input: dict[str, Any] = Field(description="What was asked, as validated.")
    status: JobStatus
    error: str | None = Field(None, description="Why a failed job failed, and what to do.")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float = Field(description="When the record and its result are deleted.")
    result: dict[str, Any] | None = None


def new_job_id(kind: JobKind) -> str:
    """Time-ordered and unguessable enough: replay-<yyyymmddHHMMSS>-<12 hex>."""
    return f"{kind}-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:12]


def input_digest(kind: JobKind, data: dict[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, "input": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class JobStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def get(self, job_id: str) -> Job | None:
        raw = self.r.get(keys.job(job_id))
        return Job.model_validate_json(raw) if raw else None

    def waiting(self) -> int:
        """Jobs queued and not yet started."""
        return int(queues.queue(JOBS_QUEUE, self.r).count)

    def submit(self, kind: JobKind, data: dict[str, Any], ttl: float, window: float) -> tuple[Job, bool]:
        """The job for this request: a new one, queued (True), or the one an identical request asked
        for within `window` seconds (False)."""
        request_key = keys.job_request(kind, input_digest(kind, data))
        job = Job(
            id=new_job_id(kind),
            kind=kind,
            input=data,
            status="queued",
            created_at=time.time(),
            expires_at=time.time() + ttl,
        )
        claimed = self.r.set(request_key, job.id, nx=True, px=max(1, int(window * 1000)), get=True)
        if claimed is not None:
            existing = self.get(claimed.decode() if isinstance(claimed, bytes) else str(claimed))
            if existing is not None and existing.status != "failed":
                return existing, False
            # The claim outlived its job (expired, or a submission that failed half-way), or its job
            # failed and is asked for again: take the claim over.
            self.r.set(request_key, job.id, px=max(1, int(window * 1000)))
        try:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.multi()  # RQ joins an open MULTI rather than starting its own
                pipe.set(keys.job(job.id), job.model_dump_json(), px=int(ttl * 1000))
                queues.queue(JOBS_QUEUE, self.r).enqueue_call(
                    RUNNER,
                    args=(job.id,),
                    job_id=job.id,
                    timeout=TIMEOUTS[kind],
                    result_ttl=0,  # the result is in the job record
                    failure_ttl=int(ttl),
                    description=f"{kind} {json.dumps(data, sort_keys=True)[:200]}",
                    pipeline=pipe,
                )
                pipe.execute()
        except Exception:
            self._unclaim(request_key, job.id)  # nothing was queued: the same request may try again
            raise
        return job, True

    def save(self, job: Job) -> None:
        """Record the job's progress; its deadline stays the one set when it was asked for."""
        left = job.expires_at - time.time()
        if left > 0:
            self.r.set(keys.job(job.id), job.model_dump_json(), px=max(1, int(left * 1000)))

    def start(self, job_id: str) -> Job | None:
        """Mark a queued job running (None: gone, or already ended: a job runs once)."""
        job = self.get(job_id)
        if job is None or job.status in ("done", "failed"):
            return None
        job.status, job.started_at = "running", time.time()
        self.save(job)
        return job

    def finish(self, job: Job, result: dict[str, Any] | None = None, error: str | None = None) -> Job:
        job.status = "failed" if error is not None else "done"
        job.result, job.error, job.finished_at = result, error, time.time()
        self.save(job)
        return job

    def current(self, job_id: str) -> Job | None:
        """The job as a reader should see it: a job whose worker died says so instead of running forever."""
        job = self.get(job_id)
        if job is None or job.status in ("done", "failed"):
            return job
        if self._lost(job):
            fresh = self.get(job_id)  # it may have ended while RQ was asked
            if fresh is not None and fresh.status in ("queued", "running"):
                return self.finish(fresh, error=LOST)
            return fresh
        return job

    def _lost(self, job: Job) -> bool:
        try:
            status = queues.fetch(job.id, self.r).get_status(refresh=False)
        except NoSuchJobError:
            return True
        return status in (RQStatus.FAILED, RQStatus.STOPPED, RQStatus.CANCELED)

    def _unclaim(self, key: str, job_id: str) -> None:
        try:
            if self.r.get(key) in (job_id, job_id.encode()):
                self.r.delete(key)
        except redis.RedisError:
            pass  # the claim expires with the dedup window anyway
