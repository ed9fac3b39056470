"""Whoever can write to Redis must not be able to run code in the worker (issue 20, item 1).

The worker holds the CircleCI, Slack and PagerDuty secrets. RQ's default serializer is pickle, and
unpickling runs whatever the payload names: a job put on Sluice's queue by anyone who reaches Redis
ran in the worker. Sluice's queues and workers speak JSON, and the worker runs only Sluice's own
entry points: a pickled job is refused, and so is a JSON job naming any other function.
"""

from __future__ import annotations

import pickle
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.models import Event, Release
from app.store import keys, queues
from tests.support.fakes import FakePrometheus, config_text
from workers.scheduler import QUEUE_NAME, enqueue_due
from workers.worker import run_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    set_context(context)
    yield context
    set_context(None)
    context.prometheus.close()
    context.store.r.close()


class _Payload:
    """What an attacker pickles: unpickling it calls open(marker, "w"), i.e. runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _plant(ctx: Context, job_id: str, data: bytes) -> None:
    """A job hash and its place on the queue, written straight into Redis as an attacker would."""
    r = ctx.store.r
    r.hset(
        f"rq:job:{job_id}",
        mapping={
            "data": zlib.compress(data),
            "origin": QUEUE_NAME,
            "status": "queued",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "enqueued_at": "2026-01-01T00:00:00.000000Z",
            "description": "planted",
            "timeout": "60",
        },
    )
    r.sadd("rq:queues", f"rq:queue:{QUEUE_NAME}")
    r.rpush(f"rq:queue:{QUEUE_NAME}", job_id)


def test_a_pickled_job_planted_in_redis_is_not_unpickled(ctx: Context, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(("builtins.print", None, (_Payload(marker),), {}), protocol=pickle.HIGHEST_PROTOCOL)
    _plant(ctx, "planted-pickle", data)

    run_worker(burst=True, with_scheduler=False, serves="releases")

    assert not marker.exists(), "the worker unpickled a payload from Redis: code execution"
    assert ctx.store.r.llen(f"rq:queue:{QUEUE_NAME}") == 0  # taken off the queue, and failed
    assert queues.fetch("planted-pickle", ctx.store.r).get_status() == "failed"


def test_a_json_job_naming_any_other_function_is_refused(ctx: Context, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = b'["pathlib.Path.touch", null, ["%s"], {}]' % str(marker).encode()
    _plant(ctx, "planted-json", data)

    run_worker(burst=True, with_scheduler=False, serves="releases")

    assert not marker.exists(), "the worker ran a function that is not one of Sluice's jobs"
    assert queues.fetch("planted-json", ctx.store.r).get_status() == "failed"


def test_sluice_enqueues_json_and_the_real_worker_runs_it(ctx: Context) -> None:
    """A tick batch goes through the scheduler and the worker as JSON (tuples come back as lists)."""
    now = time.time()
    rel = Release(
        id="r-json-1",
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0.0",
        target_version="1.1.0",
        policy="default",
        created_at=now,
        updated_at=now,
    )
    ctx.store.create(rel, keys.deploy_dedup("shop", "web", "1.1.0"), Event(at=now, type="c", message=""))
    ctx.store.schedule_tick(rel.id, 0, now)
    assert enqueue_due(ctx.store, queues.queue(QUEUE_NAME, ctx.store.r), now=now + 1) == 1

    (job_id,) = ctx.store.r.lrange(f"rq:queue:{QUEUE_NAME}", 0, -1)
    raw = zlib.decompress(ctx.store.r.hget(b"rq:job:" + job_id, "data"))
    assert raw.startswith(b'["workers.tick.run_ticks"'), raw[:80]  # JSON, not a pickle

    run_worker(burst=True, with_scheduler=False, serves="releases")
    assert ctx.store.get(rel.id).seq >= 1  # the tick ran


def test_only_app_store_queues_builds_rq_queues_workers_or_jobs() -> None:
    """A Queue, Worker or Job built anywhere else would take RQ's default serializer: pickle."""
    import ast

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in [*root.joinpath("app").rglob("*.py"), *root.joinpath("workers").rglob("*.py")]:
        if path == root / "app" / "store" / "queues.py":
            continue
        tree = ast.parse(path.read_text())
        makers = {"LiveWorker"}  # workers/worker.py's SimpleWorker, and whatever the module takes from rq
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq":
                makers |= {a.asname or a.name for a in node.names}
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr in ("fetch", "fetch_many"):
                func = func.value  # Job.fetch(...)
            if isinstance(func, ast.Name) and func.id in makers:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {func.id}")
    assert not found, found
