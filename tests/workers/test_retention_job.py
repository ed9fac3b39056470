"""The retention job as it runs in production: the scheduler's leader enqueues it on the releases
queue, an RQ worker runs it with the settings from the environment."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.fleet import Fleet, FleetWave
from app.core.models import Event, Release
from app.store import keys
from app.store import queues as rq_queues
from tests.support.fakes import FakePrometheus, config_text
from workers.retention import run_retention
from workers.scheduler import QUEUE_NAME, Scheduler

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    set_context(context)
    yield context
    set_context(None)
    context.prometheus.close()
    context.store.r.close()


def finished(ctx: Context, n: int, hours_ago: float) -> Release:
    at = time.time() - hours_ago * 3600
    rel = Release(
        id=f"r-job-{n}",
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0.0",
        target_version=f"1.1.{n}",
        policy="default",
        created_at=at - 60,
        updated_at=at - 60,
    )
    ctx.store.create(rel, keys.deploy_dedup("shop", "web", rel.target_version), Event(at=at, type="c", message=""))
    done = rel.model_copy(update={"state": "succeeded", "seq": 1, "finished_at": at, "updated_at": at})
    ctx.store.commit(done, previous_seq=0)
    return done


def test_the_leader_enqueues_retention_and_a_worker_applies_the_environments_settings(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_RETENTION", "2h")
    old, recent = finished(ctx, 1, hours_ago=3), finished(ctx, 2, hours_ago=1)
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    scheduler = Scheduler(ctx.store, queue)

    last = scheduler._maybe_enqueue_retention(0.0)
    assert scheduler._maybe_enqueue_retention(last) == last  # not again within RETENTION_EVERY
    assert [j.func_name for j in queue.get_jobs()] == ["workers.retention.run_retention"]

    rq_queues.worker([queue], ctx.store.r).work(burst=True)
    assert ctx.store.get(old.id) is None and ctx.store.get(recent.id) == recent
    assert [r.id for r in ctx.store.list_releases()[0]] == [recent.id]


def finished_fleet(ctx: Context, members: list[Release], hours_ago: float) -> Fleet:
    """A fleet that ended `hours_ago`, its one wave made of `members`."""
    at = time.time() - hours_ago * 3600
    wave = FleetWave(applications=["shop"], state="succeeded", releases={"shop": members[0].id})
    fleet = Fleet(
        id=f"f-job-{members[0].id}",
        name="web",
        service="web",
        version=members[0].target_version,
        waves=[wave],
        created_at=at - 60,
        updated_at=at - 60,
    )
    ctx.store.fleets.create(fleet, Event(at=at - 60, type="fleet_started", message=""))
    done = fleet.model_copy(update={"state": "succeeded", "finished_at": at})
    return ctx.store.fleets.commit(done, previous_seq=0, next_look_at=None)


def test_retention_deletes_a_fleet_with_its_member_releases_and_keeps_a_recent_one(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet outliving its members would list waves of releases that no longer exist."""
    monkeypatch.setenv("SLUICE_RETENTION", "2h")
    old = finished_fleet(ctx, [finished(ctx, 3, hours_ago=3)], hours_ago=3)
    recent = finished_fleet(ctx, [finished(ctx, 4, hours_ago=1)], hours_ago=1)

    assert run_retention() == 1
    assert ctx.store.fleets.get(old.id) is None and ctx.store.fleets.events(old.id) == []
    assert [f.id for f in ctx.store.fleets.recent()] == [recent.id]
    assert ctx.store.fleets.get(recent.id) == recent
