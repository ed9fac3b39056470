"""The watcher keeps watching through a flaky API server: a watch cut mid-stream resumes from the
last resourceVersion it saw (no relist, nothing missed), and a server that refuses watches is
retried with a growing backoff, not hammered."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from app.context import Context
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import Sim, running_watcher, wait_for
from workers.watcher import BACKOFF_FIRST

pytestmark = pytest.mark.integration


def test_a_dropped_watch_resumes_where_it_was_and_misses_nothing(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    with running_watcher(ctx, watch_seconds=30.0) as watcher:
        [nw] = watcher.watches
        wait_for(lambda: nw.lists == 1 and nw.events > 0, what="the first list and a watch event")
        for n in range(3):
            before = len(api.watch_starts)
            api.drop_watches()
            wait_for(lambda b=before: len(api.watch_starts) > b, what="the watcher to watch again")
            sim.deployment("api", f"2.0.{9 + n}", available=False)  # a change while it reconnects
        sim.deployment("api", "2.1.0")
        rel = wait_for(lambda: ctx.store.list_releases()[0], what="a release from the resumed watch")[0]
    assert rel.target_version == "2.1.0" and rel.trigger == "kubernetes"
    assert nw.interrupted >= 3 and nw.lists == 1 and nw.gone == 0  # resumed each time, never relisted
    # Every watch after the first list named the resourceVersion it had reached: none started over.
    assert api.watch_starts and all(rv not in (None, "", "0") for rv in api.watch_starts)


def test_a_server_refusing_watches_is_retried_with_backoff(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    refused_at: list[float] = []
    with running_watcher(ctx, watch_seconds=30.0) as watcher:
        [nw] = watcher.watches
        wait_for(lambda: nw.lists == 1 and nw.events > 0, what="the first watch")
        api.refuse_watches(3)
        before = len(api.watch_starts)
        api.drop_watches()
        for n in range(1, 5):  # three refused, the fourth served
            wait_for(lambda n=n: len(api.watch_starts) >= before + n, timeout=30, what=f"watch attempt {n}")
            refused_at.append(time.monotonic())
        sim.deployment("api", "2.1.0")
        rel = wait_for(lambda: ctx.store.list_releases()[0], what="a release once the server is back")[0]
    assert rel.target_version == "2.1.0"
    gaps = [b - a for a, b in zip(refused_at, refused_at[1:], strict=False)]
    print(f"\nwatch attempts while refused, seconds apart: {[round(g, 2) for g in gaps]}")
    # The backoff doubles (0.5 s after the drop, then 1 s, 2 s, 4 s between refusals): lower bounds,
    # which a busy machine only lengthens.
    assert [g >= k * BACKOFF_FIRST * 0.9 for g, k in zip(gaps, (2, 4, 8), strict=True)] == [True] * 3
    assert len(api.watch_starts) <= before + 5  # not hammered: one attempt per backoff
    assert nw.lists == 1
