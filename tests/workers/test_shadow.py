"""Shadow releases against a real Redis and a Prometheus over real HTTP: judged at every step, the
router never changed, the service's ownership and stable version untouched, hooks marked shadow.

The router is the in-memory implementation of Sluice's own Router protocol (tests/support/fakes.py),
which records every `set_weights`; the end-to-end test on real HAProxy is tests/e2e/test_shadow_release.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Release
from app.release.control import control
from app.release.intake import IntakeError, start_release
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from workers.tick import tick

pytestmark = pytest.mark.integration

HOOKS = """
  - {name: ci, type: webhook, on: [started, step_passed, succeeded, failed, aborted], url: "http://127.0.0.1:9/ci"}
  - {name: slack, type: slack, on: [succeeded, failed]}
  - {name: approve, type: circleci_approve}
  - {name: cancel, type: circleci_cancel_workflow}
"""


def context(redis_url: str, prom: FakePrometheus, router: FakeRouter, text: str) -> Context:
    ctx = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=prom.url)
    ctx._routers["shop"] = router
    return ctx


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    context_ = context(redis_url, prom, router, config_text(HOOKS))
    yield context_
    context_.prometheus.close()
    context_.store.r.close()


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def drive(ctx: Context, rid: str, timeout: float = 10.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
        time.sleep(0.1)
    raise AssertionError(f"release did not finish: {get(ctx, rid)}")


def test_shadow_release_runs_every_step_to_success_without_touching_the_router(
    ctx: Context, prom: FakePrometheus, router: FakeRouter
) -> None:
    # A team shifting by hand: 30% on the candidate, which Sluice must leave exactly as it is.
    router.weights["web"] = {"1.0.0": 70, "1.1.0": 30}
    prom.serve("1.1.0", 6000, errors=60)
    prom.serve("1.0.0", 14000, errors=140)
    intake = start_release(ctx, "web", "1.1.0", mode="shadow")
    assert intake.release.mode == "shadow" and intake.release.source_version == "1.0.0"

    rel = drive(ctx, intake.release.id)

    assert rel.state == "succeeded", rel.reason
    assert rel.reason == "every step passed; 1.1.0 would now be stable (shadow: nothing was changed)"
    assert router.calls == []  # set_weights was never called, not even to fail
    assert router.weights["web"] == {"1.0.0": 70, "1.1.0": 30}
    # Every step ran and was judged on the counts the candidate really had.
    evals = ctx.store.evaluations(rel.id)
    assert {e.step for e in evals if e.name == "errors-vs-stable"} == {0, 1, 2}
    assert all(e.verdict != "fail" for e in evals)
    # Where a live release would have set weights, the shadow one read them, and says so.
    observed = [e for e in ctx.store.events(rel.id) if e.type == "weights_observed"]
    assert [e.data["would_set"].get("1.1.0", 0) for e in observed] == [10, 50, 100]
    assert all(e.data["weights"] == {"1.0.0": 70, "1.1.0": 30} for e in observed)
    assert all("traffic not moved" in e.message for e in observed)
    assert "weights_set" not in [e.type for e in ctx.store.events(rel.id)]
    assert rel.observed_weights == {"1.0.0": 70, "1.1.0": 30}
    # Its verdict changes nothing: the service's stable version is still the old one, no owner taken.
    assert ctx.store.stable_version("shop", "web") is None
    assert ctx.store.active_release("shop", "web") is None
    assert start_release(ctx, "web", "1.2.0").release.source_version == "1.0.0"


def test_bad_candidate_in_shadow_is_judged_failed_and_traffic_stays_where_it_was(
    ctx: Context, prom: FakePrometheus, router: FakeRouter
) -> None:
    router.weights["web"] = {"1.0.0": 80, "1.1.0": 20}
    prom.serve("1.1.0", 4000, errors=1200)  # 30% 500s
    prom.serve("1.0.0", 16000)
    rel = drive(ctx, start_release(ctx, "web", "1.1.0", mode="shadow").release.id)
    assert rel.state == "failed" and "errors" in (rel.reason or "")
    assert "at step 1 (20% of traffic on 1.1.0, as the router has it; shadow)" in (rel.reason or "")
    assert router.calls == []
    assert router.weights["web"] == {"1.0.0": 80, "1.1.0": 20}  # not rolled back: it was never Sluice's to move


def test_live_and_shadow_releases_of_one_service_do_not_disturb_each_other(
    ctx: Context, prom: FakePrometheus, router: FakeRouter
) -> None:
    router.weights["web"] = {"1.0.0": 100, "1.1.0": 0, "1.2.0": 0}
    prom.serve("1.1.0", 2000, errors=20)
    prom.serve("1.2.0", 2000, errors=20)
    prom.serve("1.0.0", 18000, errors=180)
    live = start_release(ctx, "web", "1.1.0").release
    assert ctx.store.active_release("shop", "web") == live.id
    tick(ctx, live.id, 0)  # started: 10% on 1.1.0

    # A shadow release while the live one runs: it does not supersede it.
    shadow = start_release(ctx, "web", "1.2.0", mode="shadow").release
    assert ctx.store.active_release("shop", "web") == live.id
    assert get(ctx, live.id).state == "running"
    # The same version, live and shadow, are two releases; a repeat finds its own.
    twin = start_release(ctx, "web", "1.1.0", mode="shadow")
    assert twin.created and twin.release.id != live.id and twin.release.mode == "shadow"
    again = start_release(ctx, "web", "1.1.0", mode="shadow")
    assert not again.created and again.release.id == twin.release.id
    assert start_release(ctx, "web", "1.1.0").release.id == live.id

    # The live release runs to its end, moving traffic; the shadow ones tick along and never do.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not get(ctx, live.id).terminal:
        for rid in (live.id, shadow.id, twin.release.id):
            tick(ctx, rid, get(ctx, rid).seq)
        time.sleep(0.1)
    assert get(ctx, live.id).state == "succeeded", get(ctx, live.id).reason
    assert [w.get("1.1.0") for _, w in router.applied] == [10, 50, 100]
    assert ctx.store.stable_version("shop", "web") == "1.1.0"
    assert get(ctx, shadow.id).state != "aborted"  # never superseded by the live release

    # A live release started while a shadow one runs is not blocked by it, and does not abort it.
    newer = start_release(ctx, "web", "1.2.0").release
    assert ctx.store.active_release("shop", "web") == newer.id
    assert get(ctx, shadow.id).state != "aborted"
    # Aborting a shadow release by hand leaves the router alone.
    applied = list(router.applied)
    if not get(ctx, shadow.id).terminal:
        aborted = control(ctx, shadow.id, "abort", reason="enough")
        assert aborted.state == "aborted"
    assert router.applied == applied


def test_shadow_hooks_are_marked_and_circleci_hooks_do_not_fire(ctx: Context, prom: FakePrometheus) -> None:
    prom.serve("1.1.0", 2000, errors=20)
    prom.serve("1.0.0", 18000, errors=180)
    rel = drive(ctx, start_release(ctx, "web", "1.1.0", mode="shadow").release.id)
    deliveries = ctx.store.deliveries(rel.hooks)
    assert sorted({d.hook for d in deliveries}) == ["ci", "slack"]  # approve/cancel would be effects
    assert all(d.payload["shadow"] is True and d.payload["release"]["mode"] == "shadow" for d in deliveries)
    # A live release gets the same hooks unmarked, CircleCI's included.
    prom.serve("1.2.0", 2000, errors=20)
    live = drive(ctx, start_release(ctx, "web", "1.2.0").release.id)
    live_deliveries = ctx.store.deliveries(live.hooks)
    assert "approve" in {d.hook for d in live_deliveries}
    assert all("shadow" not in d.payload and d.payload["release"]["mode"] == "live" for d in live_deliveries)


def test_shadow_hooks_none_and_explicit_circleci_opt_in(
    redis_url: str, prom: FakePrometheus, router: FakeRouter
) -> None:
    text = config_text(HOOKS + "  - {name: approve-shadow, type: circleci_approve, shadow: true}\n").replace(
        "{name: web, policy: canary, stable_version: 1.0.0}",
        "{name: web, policy: canary, stable_version: 1.0.0, mode: shadow}",
    )
    text = text.replace(
        "{name: api, policy: quick, stable_version: 2.0.0}",
        "{name: api, policy: quick, stable_version: 2.0.0, mode: shadow, shadow_hooks: none}",
    )
    ctx = context(redis_url, prom, router, text)
    prom.serve("1.1.0", 2000, errors=20)
    prom.serve("1.0.0", 18000, errors=180)
    prom.serve("2.1.0", 2000, errors=20)
    prom.serve("2.0.0", 18000, errors=180)
    # `mode: shadow` on the service: every release of it is shadow, without asking.
    rel = drive(ctx, start_release(ctx, "web", "1.1.0").release.id)
    assert rel.mode == "shadow"
    assert sorted({d.hook for d in ctx.store.deliveries(rel.hooks)}) == ["approve-shadow", "ci", "slack"]
    quiet = start_release(ctx, "api", "2.1.0").release
    assert quiet.mode == "shadow" and quiet.shadow_hooks == "none"
    tick(ctx, quiet.id, 0)
    assert get(ctx, quiet.id).hooks == []
    assert router.calls == []
    # A notification cannot make a shadow service's release live.
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "web", "1.3.0", mode="live")
    assert err.value.status == 409 and "mode: shadow" in str(err.value)
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "cart", "3.1.0", mode="dark")
    assert err.value.status == 400 and "live, shadow" in str(err.value)
    ctx.prometheus.close()
    ctx.store.r.close()


def test_policy_mode_shadow_makes_its_releases_shadow(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> None:
    text = config_text().replace(
        "  - name: quick\n    interval: 500ms\n", "  - name: quick\n    mode: shadow\n    interval: 500ms\n"
    )
    ctx = context(redis_url, prom, router, text)
    rel = start_release(ctx, "api", "2.1.0").release
    assert rel.mode == "shadow"
    assert ctx.store.active_release("shop", "api") is None
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "api", "2.2.0", mode="live")
    assert err.value.status == 409 and "policy 'quick'" in str(err.value)
    ctx.prometheus.close()
    ctx.store.r.close()


def test_shadow_release_learns_stable_from_a_split_the_team_made_by_hand(ctx: Context, router: FakeRouter) -> None:
    router.weights["legacy"] = {"0.9.0": 60, "1.0.0": 40}
    rel = start_release(ctx, "legacy", "1.0.0", mode="shadow").release
    assert rel.source_version == "0.9.0"
    # A live release cannot tell which side is stable, and says how to fix it.
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "legacy", "1.0.0")
    assert err.value.status == 409 and "stable_version" in str(err.value)
