"""A worker that dies inside a tick, or freezes past its lease, against a real Redis.

- Dead: its release comes due again one release lease (10 s) after the scheduler handed it out,
  not two; a tick that finds the dead worker's lease still held retries within a second instead of
  waiting for another scheduler lease; once the lease has run out the release moves on.
- Frozen: a worker whose lease ran out and was taken by another cannot commit what it decided.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Release
from app.release.intake import start_release
from app.store import PREFIX, keys
from app.store import queues as rq_queues
from app.store.locks import Lease
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from workers import tick as tick_module
from workers.scheduler import LEASE_SECONDS, QUEUE_NAME, enqueue_due
from workers.tick import BUSY_RETRY_SECONDS, LEASE_TTL, TickKind, tick

pytestmark = pytest.mark.integration
DUE = PREFIX + "due"


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    prom.healthy("1.1.0", "1.0.0")
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = router
    yield context
    context.prometheus.close()
    context.store.r.close()


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def test_a_dead_workers_release_comes_back_after_one_release_lease(ctx: Context) -> None:
    assert LEASE_SECONDS == LEASE_TTL == 10.0
    rel = start_release(ctx, "web", "1.1.0").release
    member = keys.tick_member(rel.id, rel.seq)
    now = time.time()
    ctx.store.schedule(member, now - 1)
    assert enqueue_due(ctx.store, rq_queues.queue(QUEUE_NAME, ctx.store.r), now=now) == 1
    # The worker that took the job dies at once, inside the tick, holding the release's lease.
    ctx.store.r.set(keys.release_lock(rel.id), "dead-workers-token", px=int(LEASE_TTL * 1000))
    assert float(ctx.store.r.zscore(DUE, member) or 0) == pytest.approx(now + LEASE_SECONDS)

    # Due again after LEASE_SECONDS: another worker's tick finds the lease still held (the dead
    # worker's last renewal) and comes back within a second, not a scheduler lease later.
    outcome = tick(ctx, rel.id, rel.seq)
    assert outcome.kind == TickKind.BUSY
    retry = float(ctx.store.r.zscore(DUE, member) or 0)
    assert time.time() < retry <= time.time() + BUSY_RETRY_SECONDS

    ctx.store.r.delete(keys.release_lock(rel.id))  # what the lease's expiry does
    assert tick(ctx, rel.id, rel.seq).kind == TickKind.DECIDED
    assert get(ctx, rel.id).state == "running"


def test_a_frozen_worker_that_lost_its_lease_does_not_commit(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = start_release(ctx, "web", "1.1.0").release
    real_decide = tick_module.decide_next

    def freeze_then_decide(c, release, observations, now):  # type: ignore[no-untyped-def]
        # The worker freezes after observing: its lease runs out and another worker takes the
        # release (here: a token that is not ours), before this one gets to record.
        ctx.store.r.set(keys.release_lock(rel.id), "another-workers-token", px=10_000)
        return real_decide(c, release, observations, now)

    monkeypatch.setattr(tick_module, "decide_next", freeze_then_decide)
    # The lease's own check (`held`, from its heartbeat) would notice too; this test is about the
    # commit itself, so the holder believes it still holds the lease, as a frozen one does.
    monkeypatch.setattr(Lease, "held", lambda self: True)
    outcome = tick(ctx, rel.id, rel.seq)
    assert outcome.kind == TickKind.LOST and "lease" in outcome.message
    after = get(ctx, rel.id)
    assert after == rel  # nothing committed: still pending, same seq
    assert [e.type for e in ctx.store.events(rel.id)] == ["created"]
