"""The bake against a real Redis, through the real tick: a promotion that bakes keeps the release ticking
with the new version stable; a regression reverts it (the router back on the previous version, the
stable version back, a `rollback` delivery and a known-bad entry), and a router that fails at that
moment loses nothing; a bake without evidence ends by itself.

Prometheus is a local HTTP server speaking /api/v1/query (tests/support/fakes.py), the router our
in-memory implementation of the Router protocol, as in test_engine.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.release.intake import start_release
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from tests.support.gates import get, tick_until
from workers.tick import tick

pytestmark = pytest.mark.integration

HOOKS = """  - name: ci
    type: webhook
    on: [succeeded, failed, rollback]
    url: "http://127.0.0.1:1/notify"
    payload: {cleanup_version: "{source_version}"}
"""


def config(bake: str) -> str:
    text = config_text(HOOKS).replace("{name: web, policy: canary,", "{name: web, policy: baked,", 1)
    return text.replace(
        "policies:\n",
        "policies:\n  - name: baked\n    interval: 500ms\n    judge: {warmup: 0s}\n"
        f"    steps: [{{weight: 10}}, {{weight: 100}}]\n    bake: {bake}\n",
        1,
    )


@pytest.fixture
def make_ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator:
    made: list[Context] = []

    def make(bake: str) -> Context:
        context = Context(config=parse_config(config(bake)), redis_url=redis_url, prometheus_url=prom.url)
        context._routers["shop"] = router
        made.append(context)
        return context

    yield make
    for context in made:
        context.prometheus.close()
        context.store.r.close()


def test_a_regression_during_the_bake_reverts_and_a_router_failure_then_loses_nothing(
    make_ctx, prom: FakePrometheus, router: FakeRouter
) -> None:
    ctx = make_ctx("10m")
    prom.serve("1.1.0", 4000, errors=40)  # 1% errors, as stable
    prom.serve("1.0.0", 18000, errors=180)
    rid = start_release(ctx, "web", "1.1.0").release.id
    baking = tick_until(ctx, rid, lambda r: r.state != "running" and r.state != "pending")

    assert baking.state == "baking" and not baking.terminal and baking.finished_at is None, baking.reason
    assert baking.bake_until == pytest.approx(baking.bake_started_at + 600)  # type: ignore[operator]
    assert ctx.store.stable_version("shop", "web") == "1.1.0"  # promoted: stable while it bakes
    assert ctx.store.active_release("shop", "web") == rid  # and still ticking
    assert baking.next_tick_at is not None
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}
    held = tick_until(ctx, rid, lambda r: r.reason.startswith("baking:"))
    assert re.match(r"baking: (9m\d\ds|10m00s) left; errors 1\.0% vs 1\.0\.0 before the release 1\.0%", held.reason)
    assert "no evidence of a regression" in held.reason, held.reason

    prom.serve("1.1.0", 4000, errors=800)  # the new stable now answers 20% errors
    router.fail_next(1, retryable=True)  # and the router fails at that moment
    tick(ctx, rid, get(ctx, rid).seq)
    reverted = get(ctx, rid)
    assert reverted.state == "failed" and not reverted.weights_applied  # recorded, not applied yet
    assert reverted.reason.startswith("reverted during bake: errors 20.0% vs 1.0.0 before the release 1.0%")
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}
    tick(ctx, rid, reverted.seq)  # the backstop tick finishes it
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}
    assert get(ctx, rid).weights_applied

    assert ctx.store.stable_version("shop", "web") == "1.0.0"
    known = ctx.store.known_bad_version("shop", "web", "1.1.0")
    assert known is not None and known.reason == "reverted during its bake on bake-errors"
    deliveries = {d.event: d for d in ctx.store.deliveries(get(ctx, rid).hooks)}
    assert sorted(deliveries) == ["rollback", "succeeded"]  # no `failed`: the bake's revert is a rollback
    back = deliveries["rollback"].payload
    assert (back["release"]["source_version"], back["release"]["target_version"]) == ("1.1.0", "1.0.0")
    assert back["cleanup_version"] == "1.1.0"
    assert [e.type for e in ctx.store.events(rid)].count("reverted") == 1


def test_a_bake_without_evidence_of_a_regression_ends_by_itself(make_ctx, prom: FakePrometheus) -> None:
    ctx = make_ctx("2s")
    prom.serve("1.1.0", 4000, errors=40)
    prom.serve("1.0.0", 18000, errors=180)
    rid = start_release(ctx, "web", "1.1.0").release.id
    done = tick_until(ctx, rid, lambda r: r.terminal)
    assert done.state == "succeeded" and done.reason.startswith("baked for 2s: no evidence that 1.1.0 is worse")
    assert done.finished_at is not None and done.finished_at >= done.bake_until  # type: ignore[operator]
    assert ctx.store.stable_version("shop", "web") == "1.1.0"
    assert ctx.store.active_release("shop", "web") is None
    assert [e.type for e in ctx.store.events(rid)][-1] in ("baked", "weights_set")
    assert "baked" in [e.type for e in ctx.store.events(rid)]


def test_a_promotion_by_hand_bakes_and_a_newer_release_or_an_abort_ends_the_bake(
    make_ctx, prom: FakePrometheus, router: FakeRouter
) -> None:
    from app.release.control import control

    ctx = make_ctx("10m")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        prom.serve(version, 4000, errors=40)
    rid = start_release(ctx, "web", "1.1.0").release.id
    tick(ctx, rid, 0)
    promoted = control(ctx, rid, "promote", actor="alice")
    assert promoted.state == "baking" and promoted.bake_until is not None
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}

    # A newer release supersedes the bake: it ends, the baking version stays stable and is the new source.
    newer = start_release(ctx, "web", "1.2.0").release
    assert newer.source_version == "1.1.0"
    ended = get(ctx, rid)
    assert ended.state == "succeeded" and ended.reason == (
        "bake ended early: abort by sluice: superseded by release " + f"{newer.id} (1.2.0)"
    )
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}  # nothing moved back to 1.0.0
    assert ctx.store.stable_version("shop", "web") == "1.1.0"
    assert ctx.store.known_bad_version("shop", "web", "1.1.0") is None

    # Abort by hand during the next bake: ends it, 1.2.0 stays.
    tick_until(ctx, newer.id, lambda r: r.state == "baking")
    aborted = control(ctx, newer.id, "abort", actor="bob", reason="enough")
    assert aborted.state == "succeeded" and aborted.reason == "bake ended early: abort by bob: enough"
    assert router.weights["web"]["1.2.0"] == 100
    assert ctx.store.stable_version("shop", "web") == "1.2.0"


def test_a_bake_revert_counts_as_a_reverted_release_in_the_delivery_metrics(
    make_ctx, prom: FakePrometheus, router: FakeRouter
) -> None:
    from app.telemetry import delivery

    ctx = make_ctx("10m")
    prom.serve("1.1.0", 4000, errors=40)
    prom.serve("1.0.0", 18000, errors=180)
    rid = start_release(ctx, "web", "1.1.0").release.id
    tick_until(ctx, rid, lambda r: r.state == "baking")
    prom.serve("1.1.0", 4000, errors=800)
    reverted = tick_until(ctx, rid, lambda r: r.terminal)
    assert delivery.outcome(reverted) == "reverted"
    web = next(s for s in delivery.summary(ctx.store) if s.service == "web")
    assert web.outcomes["reverted"] == 1 and web.releases == 1 and web.change_failure_rate == 1.0
    # Restored from the revert's decision, not from the first step's traffic minutes before.
    assert web.mean_time_to_restore_seconds is not None and web.mean_time_to_restore_seconds < 5
