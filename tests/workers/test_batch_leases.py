"""A batch of ticks under leases taken together (workers/tick.py `batch_leases`), against a real
Redis: a release another worker holds is retried soon, as a lone tick's is; a release due twice in
one batch is decided once; no lease outlives the batch."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.context import Context
from app.release.intake import start_release
from app.store import keys
from tests.support.fakes import FakePrometheus, FakeRouter, config_text, shop_context
from workers.tick import BUSY_RETRY_SECONDS, run_ticks, tick

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    prom.healthy("1.1.0", "1.0.0")
    prom.healthy("2.1.0", "2.0.0")
    with shop_context(config_text(), redis_url, prom, router) as context:
        yield context


def started(ctx: Context, service: str, version: str) -> tuple[str, int]:
    rid = start_release(ctx, service, version).release.id
    assert str(tick(ctx, rid, 0)).startswith("start")
    release = ctx.store.get(rid)
    assert release is not None
    return rid, release.seq


def seq_of(ctx: Context, rid: str) -> int:
    release = ctx.store.get(rid)
    assert release is not None
    return release.seq


def test_a_batch_skips_a_release_another_holds_and_decides_the_rest(ctx: Context) -> None:
    web, api = started(ctx, "web", "1.1.0"), started(ctx, "api", "2.1.0")
    ctx.store.r.set(keys.release_lock(api[0]), "dead-workers-token", px=10_000)
    outcomes = run_ticks([web, api])
    assert outcomes[0].startswith("hold") and outcomes[1].startswith("busy"), outcomes
    assert seq_of(ctx, web[0]) == web[1] + 1
    assert seq_of(ctx, api[0]) == api[1]
    retry = float(ctx.store.r.zscore(keys.DUE, keys.tick_member(*api)) or 0)
    assert time.time() < retry <= time.time() + BUSY_RETRY_SECONDS
    assert ctx.store.r.get(keys.release_lock(web[0])) is None  # given back
    assert ctx.store.r.get(keys.release_lock(api[0])) == b"dead-workers-token"


def test_a_release_due_twice_in_one_batch_is_decided_once(ctx: Context) -> None:
    web = started(ctx, "web", "1.1.0")
    outcomes = run_ticks([web, web])
    assert sorted(o.split(":")[0] for o in outcomes) in (["busy", "hold"], ["hold", "stale"]), outcomes
    assert seq_of(ctx, web[0]) == web[1] + 1  # one decision, not two
    assert ctx.store.r.get(keys.release_lock(web[0])) is None
