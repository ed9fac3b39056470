"""The release engine against a real Redis: intake, ticks, crash repair, router errors,
control, supersede and no-data handling.

The router is an in-memory implementation of our own Router protocol (tests/support/fakes.py);
Prometheus is a real local HTTP server speaking /api/v1/query, queried by the real
prometheus-api-client through PrometheusQuerier.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.decide import decide
from app.core.models import Event, Observations, Release
from app.release.control import ControlError, control
from app.release.engine import ROUTER_RETRY_SECONDS, commit_decision
from app.release.intake import CLAIM_BACKSTOP_SECONDS, IntakeError, start_release
from app.store import PREFIX
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from workers.tick import TickKind, tick

pytestmark = pytest.mark.integration

DUE = PREFIX + "due"


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = router
    yield context
    context.prometheus.close()
    context.store.r.close()


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def event_types(ctx: Context, rid: str) -> list[str]:
    return [e.type for e in ctx.store.events(rid)]


def due_score(ctx: Context, member: str) -> float | None:
    score = ctx.store.r.zscore(DUE, member)
    return None if score is None else float(score)


def tick_once(ctx: Context, rid: str) -> str:
    return str(tick(ctx, rid, get(ctx, rid).seq))


def drive(ctx: Context, rid: str, timeout: float = 8.0, pause: float = 0.1) -> Release:
    """Tick (with the current seq, as the scheduler would) until the release is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick_once(ctx, rid)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
        time.sleep(pause)
    raise AssertionError(f"release did not finish: {get(ctx, rid)}")


# --- intake -----------------------------------------------------------------------------------------


def test_deploy_creates_pending_release_from_configured_stable(ctx: Context) -> None:
    intake = start_release(ctx, "web", "1.1.0")
    rel = intake.release
    assert intake.created
    assert rel.state == "pending" and rel.seq == 0
    assert rel.source_version == "1.0.0" and rel.target_version == "1.1.0"
    assert rel.policy == "canary" and rel.application == "shop" and rel.namespace == "prod"
    assert get(ctx, rel.id) == rel
    assert ctx.store.active_release("shop", "web") == rel.id
    assert due_score(ctx, f"tick:{rel.id}:0") is not None
    assert event_types(ctx, rel.id) == ["created"]

    again = start_release(ctx, "web", "1.1.0")
    assert not again.created
    assert again.release.id == rel.id
    assert event_types(ctx, rel.id) == ["created", "duplicate"]
    assert ctx.store.list_releases()[1] == 1


@pytest.mark.parametrize("version", ['1.0"}', "1.0 beta", "", "-1.0", "a" * 64, "1.0\n"])
def test_deploy_invalid_version_is_rejected_and_stores_nothing(ctx: Context, version: str) -> None:
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "web", version)
    assert err.value.status == 400
    assert "version" in str(err.value)
    assert ctx.store.list_releases() == ([], 0)
    assert ctx.store.due_count() == 0
    assert ctx.store.active_release("shop", "web") is None
    assert ctx.store.r.keys(PREFIX + "dedup:*") == []


def test_deploy_unknown_service_and_same_as_stable(ctx: Context) -> None:
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "nope", "1.0.0")
    assert err.value.status == 404
    assert "shop/web" in err.value.detail["known_services"]  # type: ignore[index]
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "web", "1.0.0")
    assert err.value.status == 409
    assert ctx.store.list_releases() == ([], 0)


def test_stable_version_learned_from_router_when_not_configured(ctx: Context, router: FakeRouter) -> None:
    from integrations.routers.interface import RouterError

    router.weights["legacy"] = {"0.9.0": 50, "0.9.1": 50}
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "legacy", "1.0.0")
    assert err.value.status == 409 and "stable_version" in str(err.value)

    router.weights["legacy"] = {"0.9.0": 100, "0.8.0": 0}
    rel = start_release(ctx, "legacy", "1.0.0").release
    assert rel.source_version == "0.9.0"
    assert ctx.store.list_releases()[1] == 1

    class Broken(FakeRouter):
        def get_weights(self, service):  # type: ignore[no-untyped-def]
            raise RouterError("stats socket refused the connection")

    ctx._routers["shop"] = Broken()
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "legacy", "1.0.1")
    assert err.value.status == 503 and "refused" in str(err.value)


# --- a release from start to finish -------------------------------------------------------------------


def test_passing_release_walks_the_steps_and_promotes(ctx: Context, prom: FakePrometheus, router: FakeRouter) -> None:
    prom.serve("1.1.0", 2000, errors=20)  # 1% errors, as stable
    prom.serve("1.0.0", 18000, errors=180)
    rid = start_release(ctx, "web", "1.1.0").release.id

    rel = drive(ctx, rid)

    assert rel.state == "succeeded", rel.reason
    assert router.applied_weights("web") == [
        {"1.0.0": 90, "1.1.0": 10},
        {"1.0.0": 50, "1.1.0": 50},
        {"1.0.0": 0, "1.1.0": 100},
    ]
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}
    assert ctx.store.stable_version("shop", "web") == "1.1.0"
    assert ctx.store.active_release("shop", "web") is None
    assert rel.finished_at is not None and rel.next_tick_at is None and rel.weights_applied
    # Every tick is done: nothing left scheduled for this release.
    assert [m for m in ctx.store.r.zrange(DUE, 0, -1) if m.decode().startswith(f"tick:{rid}:")] == []

    evals = ctx.store.evaluations(rid)
    assert evals, "evaluations were not recorded"
    errors = [e for e in evals if e.name == "errors"]
    assert errors and all(e.value == pytest.approx(0.01) for e in errors)
    assert all(e.threshold == "<= 0.05" and e.verdict == "pass" for e in errors)
    assert {e.step for e in errors} == {0, 1, 2}
    # Judged on both versions' counts, asked of Prometheus for each version.
    for version in ("1.1.0", "1.0.0"):
        assert any(q.startswith("(sum by (code) (") and f'version="{version}"' in q for q in prom.queries), version
    compared = [e for e in evals if e.name == "errors-vs-stable"]
    assert compared and all(e.verdict == "pass" for e in compared)
    assert {e.step for e in compared} == {0, 1, 2}
    for e in compared:
        assert e.evidence is not None and e.evidence["bad"][0] == 20 and e.evidence["requests"][0] == 2000
        live = e.step < 2  # at 100% stable has no traffic: compared with its counts from the earlier steps
        assert e.evidence["reference"] == ("stable" if live else "stable (earlier steps)"), e.evidence
        assert e.evidence["requests"][1] == (18000 if live else 36000)

    types = event_types(ctx, rid)
    for t in ("created", "started", "step_passed", "succeeded", "weights_set"):
        assert t in types, (t, types)
    assert types.count("step_passed") == 2
    assert types.index("started") < types.index("step_passed") < types.index("succeeded")
    # A later deploy of another version starts from the new stable version.
    assert start_release(ctx, "web", "1.2.0").release.source_version == "1.1.0"


def test_failing_metrics_fail_on_first_evaluation(ctx: Context, prom: FakePrometheus, router: FakeRouter) -> None:
    prom.serve("1.1.0", 2000, errors=600)  # 30% 500s
    prom.serve("1.0.0", 18000)  # none
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert str(tick(ctx, rid, 0)).startswith("start")
    assert str(tick(ctx, rid, 1)).startswith("fail")

    rel = get(ctx, rid)
    assert rel.state == "failed"
    assert router.applied_weights("web") == [{"1.0.0": 90, "1.1.0": 10}, {"1.0.0": 100}]
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}
    assert rel.reason is not None
    assert rel.reason.startswith("check 'errors-vs-stable' failed: errors 30.0% vs stable 0.0%"), rel.reason
    assert "(decisive)" in rel.reason and "also failed: 'errors' (0.3)" in rel.reason, rel.reason
    assert ctx.store.stable_version("shop", "web") is None  # stable stays the configured one
    assert ctx.store.active_release("shop", "web") is None
    evals = [e for e in ctx.store.evaluations(rid) if e.name == "errors"]
    assert len(evals) == 1 and evals[0].verdict == "fail" and evals[0].value == pytest.approx(0.3)
    assert evals[0].threshold == "<= 0.05"
    compared = [e for e in ctx.store.evaluations(rid) if e.name == "errors-vs-stable"]
    assert len(compared) == 1 and compared[0].verdict == "fail" and compared[0].decisive
    assert compared[0].value == pytest.approx(0.3) and compared[0].stable_value == 0.0
    types = event_types(ctx, rid)
    assert "failed" in types and types[-1] == "weights_set"
    assert str(tick(ctx, rid, rel.seq)).startswith("failed: nothing")


def test_a_candidate_that_looks_broken_is_looked_at_again_after_half_the_interval(
    ctx: Context, prom: FakePrometheus, router: FakeRouter
) -> None:
    """Half its 6 first answers are errors: not yet evidence enough to fail, but the next look comes
    after half the interval, not a whole one; a candidate that looks fine waits the whole interval."""
    text = config_text().replace("  - name: canary\n    interval: 500ms", "  - name: canary\n    interval: 10s", 1)
    assert "interval: 10s" in text
    ctx = _reconfigured(ctx, router, prom, text)
    prom.serve("1.1.0", 6, errors=3)
    prom.serve("1.0.0", 54)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert str(tick(ctx, rid, 0)).startswith("start")
    interval = ctx.config.policy(get(ctx, rid).policy).interval
    assert interval == 10
    before = time.time()
    assert str(tick(ctx, rid, 1)).startswith("hold"), get(ctx, rid).reason
    rel = get(ctx, rid)
    assert rel.next_tick_at is not None and rel.next_tick_at - before <= interval / 2 + 1, (rel.next_tick_at, before)
    prom.serve("1.1.0", 6)
    before = time.time()
    assert str(tick(ctx, rid, rel.seq)).startswith("hold")
    rel = get(ctx, rid)
    assert rel.next_tick_at is not None and rel.next_tick_at - before >= interval - 0.01


def test_unhealthy_candidate_fails(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)
    router.healthy = False
    assert tick_once(ctx, rid).startswith("fail")
    rel = get(ctx, rid)
    assert rel.state == "failed" and rel.reason is not None and "'health'" in rel.reason
    assert router.weights["api"] == {"2.0.0": 100, "2.1.0": 0}


def test_request_volume_gate_and_comparison_with_stable(ctx: Context, prom: FakePrometheus, router: FakeRouter) -> None:
    prom.serve("6.1.0", 2000, errors=30)  # 1.5%: within stable + 0.02 (vs-stable's max_over_stable)
    prom.serve("6.0.0", 18000, errors=180)  # 1%
    rid = start_release(ctx, "orders", "6.1.0").release.id
    tick(ctx, rid, 0)
    # The evidence suffices, but the step-volume query sees 0 requests for the candidate: the step holds.
    out = tick_once(ctx, rid)
    assert out.startswith("hold") and "0 of 100 requests" in out, out
    assert any(q.startswith("sum(increase(") and 'version="6.1.0"' in q for q in prom.queries)
    evals = [e for e in ctx.store.evaluations(rid) if e.name == "errors-vs-stable"]
    assert evals[-1].verdict == "pass" and evals[-1].stable_value == pytest.approx(0.01)
    assert evals[-1].evidence is not None and evals[-1].evidence["margin"] == 0.02
    assert evals[-1].evidence["requests"] == [2000, 18000] and evals[-1].evidence["reference"] == "stable"

    prom.rules = [('increase(&&version="6.1.0"', 150.0)]
    out = tick_once(ctx, rid)
    assert out.startswith("advance"), out
    assert router.weights["orders"] == {"6.0.0": 0, "6.1.0": 100}

    prom.serve("6.1.0", 5000, errors=250)  # 5% > stable's 1% (its counts at 10%) + 0.02
    out = tick_once(ctx, rid)
    assert out.startswith("fail"), out
    rel = get(ctx, rid)
    assert rel.reason is not None and rel.reason.startswith("check 'errors-vs-stable' failed"), rel.reason
    assert "vs stable (earlier steps) 1.0%" in rel.reason and "worse by more than 2 points" in rel.reason
    assert router.weights["orders"] == {"6.0.0": 100, "6.1.0": 0}


# --- duplicated and concurrent ticks -------------------------------------------------------------------


def test_duplicate_tick_is_stale(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    assert str(tick(ctx, rid, 0)).startswith("start")
    before = get(ctx, rid)
    events_before = ctx.store.events(rid)

    assert str(tick(ctx, rid, 0)).startswith("stale")
    assert get(ctx, rid) == before
    assert ctx.store.events(rid) == events_before
    assert len(router.calls) == 1


def test_tick_while_locked_is_busy(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    before = get(ctx, rid)
    with ctx.store.lock("release:" + rid) as acquired:
        assert acquired
        assert str(tick(ctx, rid, 0)).startswith("busy")
    assert get(ctx, rid) == before
    assert router.calls == []
    assert event_types(ctx, rid) == ["created"]
    assert str(tick(ctx, rid, 0)).startswith("start")  # the lock is free again


def test_tick_for_unknown_release_is_gone_and_unscheduled(ctx: Context) -> None:
    ctx.store.schedule("tick:r-nope:3", time.time())
    assert tick(ctx, "r-nope", 3).kind == TickKind.GONE
    assert ctx.store.due_count() == 0


# --- crash safety and router errors ---------------------------------------------------------------------


def test_crash_between_record_and_act_is_repaired_by_next_tick(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    rel = get(ctx, rid)
    _, _, policy = ctx.locate(rel)
    now = time.time()
    decision = decide(rel, policy, Observations(at=now), now)
    assert decision.kind == "start"
    committed = commit_decision(ctx, rel, decision, now)  # ... and the process dies here

    stored = get(ctx, rid)
    assert stored.weights_applied is False
    assert stored.desired_weights == {"1.0.0": 90, "1.1.0": 10}
    assert stored.state == "running" and stored.seq == 1 == committed.seq
    assert router.calls == []
    assert due_score(ctx, f"tick:{rid}:1") is not None
    assert due_score(ctx, f"tick:{rid}:0") is None

    result = str(tick(ctx, rid, 1))
    assert router.applied_weights("web")[0] == {"1.0.0": 90, "1.1.0": 10}
    stored = get(ctx, rid)
    assert stored.weights_applied
    assert result.startswith("hold")  # then it evaluated as usual
    types = event_types(ctx, rid)
    assert types.index("weights_set") > types.index("started")


def test_crash_after_terminal_decision_restores_stable(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)
    rel = get(ctx, rid)
    from app.core.models import Decision

    now = time.time()
    aborted = commit_decision(ctx, rel, Decision(kind="abort", weights=rel.stable_weights(), reason="test abort"), now)
    assert aborted.state == "aborted" and not aborted.weights_applied
    score = due_score(ctx, f"tick:{rid}:{aborted.seq}")
    assert score is not None and score == pytest.approx(now + ROUTER_RETRY_SECONDS, abs=0.01)

    assert str(tick(ctx, rid, aborted.seq)).startswith("aborted")
    assert router.weights["api"] == {"2.0.0": 100, "2.1.0": 0}
    assert get(ctx, rid).weights_applied
    assert ctx.store.due_count() == 0


def test_retryable_router_error_keeps_release_and_retries(
    ctx: Context, router: FakeRouter, prom: FakePrometheus
) -> None:
    prom.healthy("2.1.0", "2.0.0")
    rid = start_release(ctx, "api", "2.1.0").release.id
    router.fail_next(1, retryable=True)
    before = time.time()
    tick(ctx, rid, 0)

    rel = get(ctx, rid)
    assert rel.state == "running" and not rel.weights_applied
    assert "router_error" in event_types(ctx, rid)
    err = [e for e in ctx.store.events(rid) if e.type == "router_error"][0]
    assert err.data["retryable"] is True and err.data["requested"] == {"2.0.0": 90, "2.1.0": 10}
    score = due_score(ctx, f"tick:{rid}:{rel.seq}")
    assert score is not None and before + ROUTER_RETRY_SECONDS - 0.1 <= score <= time.time() + ROUTER_RETRY_SECONDS

    tick(ctx, rid, rel.seq)
    rel = get(ctx, rid)
    assert rel.weights_applied and rel.state == "running"
    assert router.applied_weights("api")[0] == {"2.0.0": 90, "2.1.0": 10}
    assert drive(ctx, rid).state == "succeeded"


def test_router_error_during_tick_repair_keeps_retrying(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    router.fail_next(2, retryable=True)
    tick(ctx, rid, 0)
    seq = get(ctx, rid).seq
    assert str(tick(ctx, rid, seq)).startswith("router not yet updated")
    assert get(ctx, rid).seq == seq
    assert due_score(ctx, f"tick:{rid}:{seq}") is not None
    assert event_types(ctx, rid).count("router_error") == 2
    tick(ctx, rid, seq)
    assert get(ctx, rid).weights_applied


def test_non_retryable_router_error_at_start_fails_to_stable(ctx: Context, router: FakeRouter) -> None:
    router.missing = {"2.1.0"}
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)

    rel = get(ctx, rid)
    assert rel.state == "failed"
    assert rel.reason is not None and "no server for version 2.1.0" in rel.reason
    assert router.applied_weights("api") == [{"2.0.0": 100}]
    assert router.weights["api"] == {"2.0.0": 100}
    assert rel.weights_applied
    assert ctx.store.due_count() == 0
    types = event_types(ctx, rid)
    assert types.index("router_error") < types.index("failed") < types.index("weights_set")


# --- control --------------------------------------------------------------------------------------------


def test_pause_holds_and_resume_continues(ctx: Context, router: FakeRouter, prom: FakePrometheus) -> None:
    prom.healthy("2.1.0", "2.0.0")
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)
    paused = control(ctx, rid, "pause", actor="test")
    assert paused.state == "paused"
    assert [m for m in ctx.store.r.zrange(DUE, 0, -1) if m.decode().startswith(f"tick:{rid}:")] == []

    calls = len(router.calls)
    for _ in range(3):
        out = str(tick(ctx, rid, paused.seq))
        assert out.startswith("paused")
    assert get(ctx, rid) == paused
    assert len(router.calls) == calls

    with pytest.raises(ControlError) as err:
        control(ctx, rid, "pause")
    assert err.value.status == 409

    resumed = control(ctx, rid, "resume")
    assert resumed.state == "running"
    assert due_score(ctx, f"tick:{rid}:{resumed.seq}") is not None
    assert drive(ctx, rid).state == "succeeded"
    assert "paused" in event_types(ctx, rid) and "resumed" in event_types(ctx, rid)


def test_step_with_pause_waits_for_resume(ctx: Context, router: FakeRouter, prom: FakePrometheus) -> None:
    prom.healthy("5.1.0", "5.0.0")
    rid = start_release(ctx, "admin", "5.1.0").release.id
    tick(ctx, rid, 0)
    out = tick_once(ctx, rid)
    assert out.startswith("pause"), out
    rel = get(ctx, rid)
    assert rel.state == "paused" and router.weights["admin"] == {"5.0.0": 80, "5.1.0": 20}
    tick_once(ctx, rid)
    assert get(ctx, rid).seq == rel.seq
    control(ctx, rid, "resume")
    assert drive(ctx, rid).state == "succeeded"
    assert router.weights["admin"] == {"5.0.0": 0, "5.1.0": 100}


def test_abort_sets_stable_immediately(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    tick(ctx, rid, 0)
    rel = control(ctx, rid, "abort", actor="test", reason="bad smell")
    assert rel.state == "aborted" and rel.reason == "abort by test: bad smell" and rel.weights_applied
    assert router.applied_weights("web")[-1] == {"1.0.0": 100}
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}
    assert ctx.store.active_release("shop", "web") is None
    assert ctx.store.due_count() == 0
    for action in ("abort", "pause", "resume", "promote"):
        with pytest.raises(ControlError) as err:
            control(ctx, rid, action)
        assert err.value.status == 409


def test_promote_sets_full_candidate(ctx: Context, router: FakeRouter) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    tick(ctx, rid, 0)
    rel = control(ctx, rid, "promote")
    assert rel.state == "succeeded" and rel.weights_applied
    assert router.applied_weights("web")[-1] == {"1.0.0": 0, "1.1.0": 100}
    assert ctx.store.stable_version("shop", "web") == "1.1.0"


def test_control_errors(ctx: Context) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    with pytest.raises(ControlError) as err:
        control(ctx, rid, "resume")  # pending, not paused
    assert err.value.status == 409
    with pytest.raises(ControlError) as err:
        control(ctx, rid, "pause")  # pending, not running
    assert err.value.status == 409
    with pytest.raises(ControlError) as err:
        control(ctx, rid, "explode")
    assert err.value.status == 404
    with pytest.raises(ControlError) as err:
        control(ctx, "r-missing", "abort")
    assert err.value.status == 404


# --- supersede --------------------------------------------------------------------------------------------


def test_new_version_supersedes_running_release(ctx: Context, router: FakeRouter) -> None:
    old = start_release(ctx, "web", "1.1.0").release.id
    tick(ctx, old, 0)
    assert router.weights["web"] == {"1.0.0": 90, "1.1.0": 10}

    new = start_release(ctx, "web", "1.2.0").release
    old_rel = get(ctx, old)
    assert old_rel.state == "aborted"
    assert old_rel.reason is not None and "superseded" in old_rel.reason and new.id in old_rel.reason
    # Traffic went back to stable before the new release started.
    assert router.applied_weights("web") == [{"1.0.0": 90, "1.1.0": 10}, {"1.0.0": 100}]
    assert ctx.store.active_release("shop", "web") == new.id
    assert new.source_version == "1.0.0"

    tick(ctx, new.id, 0)
    assert router.weights["web"] == {"1.0.0": 90, "1.1.0": 0, "1.2.0": 10}
    # The old release's late ticks do nothing.
    assert str(tick(ctx, old, old_rel.seq)).startswith("aborted")
    assert router.weights["web"]["1.2.0"] == 10


def test_superseded_release_with_unapplied_abort_does_not_undo_new_release(ctx: Context, router: FakeRouter) -> None:
    old = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, old, 0)
    router.fail_next(1, retryable=True)  # the supersede abort's router call fails
    new = start_release(ctx, "api", "2.2.0").release.id
    old_rel = get(ctx, old)
    assert old_rel.state == "aborted" and not old_rel.weights_applied
    tick(ctx, new, 0)
    assert router.weights["api"] == {"2.0.0": 90, "2.1.0": 0, "2.2.0": 10}
    # The old release's backstop tick must not put traffic on stable under the new release.
    tick(ctx, old, old_rel.seq)
    assert router.weights["api"] == {"2.0.0": 90, "2.1.0": 0, "2.2.0": 10}
    assert "weights_skipped" in event_types(ctx, old)


@pytest.mark.parametrize("newer_done", [False, True])
def test_release_that_lost_its_service_to_a_newer_one_does_not_touch_traffic(
    ctx: Context, router: FakeRouter, prom: FakePrometheus, newer_done: bool
) -> None:
    """When a supersede cannot abort the old release (control gives up after waiting 10 s for a busy
    tick, and intake carries on), the old release must not keep steering the router under the new
    one: not by evaluating, and not by repairing its own unapplied weights."""
    prom.healthy("2.1.0", "2.0.0")
    old = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, old, 0)
    router.fail_next(1)
    assert tick_once(ctx, old).startswith("advance")  # 50/50 decided, but the router call failed
    assert not get(ctx, old).weights_applied
    # What intake leaves behind when the abort could not take the lock: the new release owns the service.
    ctx.store.set_active("shop", "api", "r-newer")
    router.weights["api"] = {"2.0.0": 90, "2.1.0": 0, "2.2.0": 10}
    if newer_done:  # ... and the newer release already finished (which clears `active`)
        ctx.store.r.delete(PREFIX + "active:shop:api")
    for action in ("promote", "resume"):  # nor can anyone steer it back onto the router
        with pytest.raises(ControlError) as err:
            control(ctx, old, action)
        assert err.value.status == 409
    calls = len(router.calls)

    tick_once(ctx, old)

    assert len(router.calls) == calls, router.calls[calls:]
    rel = get(ctx, old)
    assert rel.state == "aborted" and rel.reason is not None and "superseded" in rel.reason
    assert rel.weights_applied
    assert "weights_skipped" in event_types(ctx, old)
    assert ctx.store.active_release("shop", "api") == (None if newer_done else "r-newer")
    assert router.weights["api"] == {"2.0.0": 90, "2.1.0": 0, "2.2.0": 10}
    assert [m for m in ctx.store.r.zrange(DUE, 0, -1) if m.decode().startswith(f"tick:{old}:")] == []


# --- no data ----------------------------------------------------------------------------------------------


def test_no_data_with_hold_keeps_the_step(ctx: Context, prom: FakePrometheus, router: FakeRouter) -> None:
    prom.serve("3.0.0", 18000)  # stable answers; the candidate has no counts at all (no data)
    rid = start_release(ctx, "cart", "3.1.0").release.id
    tick(ctx, rid, 0)
    for _ in range(4):
        out = tick_once(ctx, rid)
        assert out.startswith("hold"), out
        time.sleep(0.05)
    rel = get(ctx, rid)
    assert rel.state == "running" and rel.step == 0
    assert router.applied_weights("cart") == [{"3.0.0": 90, "3.1.0": 10}]
    assert rel.no_data_since is not None
    assert rel.reason is not None and "'errors-vs-stable' has no data" in rel.reason, rel.reason
    evals = [e for e in ctx.store.evaluations(rid) if e.name == "errors-vs-stable"]
    assert len(evals) == 4 and all(e.verdict == "no_data" and e.value is None for e in evals)
    guard = [e for e in ctx.store.evaluations(rid) if e.name == "errors"]  # no counts: never a pass
    assert len(guard) == 4 and all(e.verdict != "pass" and e.value is None for e in guard)
    assert event_types(ctx, rid).count("hold") == 1  # same reason: recorded once

    prom.serve("3.1.0", 2000)
    assert drive(ctx, rid).state == "succeeded"


def test_no_data_says_why_when_prometheus_can_tell(ctx: Context, prom: FakePrometheus) -> None:
    """The provider finds out why a version has no counts (here its scrape target is down); the
    evaluation and the hold must say so, not only that the candidate has no counts."""
    prom.serve("3.0.0", 18000)
    prom.up["3.1.0"] = 0
    rid = start_release(ctx, "cart", "3.1.0").release.id
    tick(ctx, rid, 0)
    assert tick_once(ctx, rid).startswith("hold")
    [evaluation] = [e for e in ctx.store.evaluations(rid) if e.name == "errors-vs-stable"]
    assert evaluation.verdict == "no_data"
    assert "up == 0" in (evaluation.detail or ""), evaluation.detail


def test_no_data_timeout_fails(ctx: Context, prom: FakePrometheus, router: FakeRouter) -> None:
    prom.serve("4.0.0", 18000)  # the candidate has no counts
    rid = start_release(ctx, "search", "4.1.0").release.id
    tick(ctx, rid, 0)
    assert tick_once(ctx, rid).startswith("hold")
    time.sleep(1.05)
    out = tick_once(ctx, rid)
    assert out.startswith("fail"), out
    rel = get(ctx, rid)
    assert rel.state == "failed"
    assert rel.reason is not None and "no data" in rel.reason and "no_data_timeout" in rel.reason
    assert router.weights["search"] == {"4.0.0": 100, "4.1.0": 0}


def test_on_no_data_pass_never_promotes_a_step_without_counts(prom: FakePrometheus, redis_url: str) -> None:
    """`on_no_data: pass` lets a check without data through, but the judge still needs both versions'
    counts: a release whose candidate has none (or whose Prometheus is down) holds, never promotes."""
    from app.cli.demo.stack import free_port

    text = config_text().replace("on_no_data: hold\n    steps:", "on_no_data: pass\n    steps:", 1)
    assert "on_no_data: pass" in text
    for url, stable_counts in [(prom.url, True), (f"http://127.0.0.1:{free_port()}", False)]:
        context = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=url)
        router = FakeRouter()
        context._routers["shop"] = router
        try:
            context.store.r.flushdb()
            if stable_counts:
                prom.serve("3.0.0", 18000)  # stable answers; the candidate has no counts at all
            rid = start_release(context, "cart", "3.1.0").release.id
            tick(context, rid, 0)
            for _ in range(4):
                out = str(tick(context, rid, get(context, rid).seq))
                assert not out.startswith(("promote", "succeed")), out
                time.sleep(0.05)
            rel = get(context, rid)
            assert rel.state == "running" and rel.step == 0, (url, rel.state, rel.step, rel.reason)
            assert router.applied_weights("cart") == [{"3.0.0": 90, "3.1.0": 10}]
            assert all(e.verdict != "pass" for e in context.store.evaluations(rid) if e.name == "errors")
        finally:
            context.prometheus.close()
            context.store.r.close()


def test_a_frozen_prometheus_delays_a_batch_by_its_query_budget_at_most(
    ctx: Context, router: FakeRouter, redis_url: str
) -> None:
    """Prometheus accepts connections and never answers: each query would wait its 2 s timeout, one
    after another for every release of the batch. The batch's budget cuts that short: the releases
    hold (no data) or, past their no_data_timeout on the wall clock, fail; none is promoted, and the
    batch ends within BATCH_QUERY_BUDGET."""
    import socket

    from app.context import set_context
    from workers.tick import BATCH_QUERY_BUDGET, run_ticks

    batch = []
    for service, version in [("web", "1.1.0"), ("api", "2.1.0"), ("cart", "3.1.0"), ("search", "4.1.0")]:
        rid = start_release(ctx, service, version).release.id
        assert str(tick(ctx, rid, 0)).startswith("start")
        batch.append((rid, get(ctx, rid).seq))
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)  # connections complete in the kernel's backlog; nothing ever answers
    port = frozen.getsockname()[1]
    stuck = Context(config=ctx.config, redis_url=redis_url, prometheus_url=f"http://127.0.0.1:{port}")
    stuck._routers["shop"] = router
    set_context(stuck)
    try:
        started = time.monotonic()
        outcomes = run_ticks(batch)
        elapsed = time.monotonic() - started
    finally:
        set_context(None)
        stuck.prometheus.close()
        stuck.store.r.close()
        frozen.close()
    assert elapsed < BATCH_QUERY_BUDGET, (elapsed, outcomes)
    assert "error" not in outcomes, outcomes
    # search's policy says `no_data_timeout: 1s`, and its queries found no data for longer than that
    # on the wall clock (they hung until cut): it fails back to stable. The others hold. None moves on.
    *holding, search = batch
    for rid, _ in holding:
        rel = get(ctx, rid)
        assert rel.state == "running" and rel.step == 0, (rel.state, rel.step, rel.reason)
    rel = get(ctx, search[0])
    assert rel.state == "failed" and "no_data_timeout" in (rel.reason or ""), (rel.state, rel.reason)
    assert rel.desired_weights == {"4.0.0": 100}
    assert stuck.prometheus._budget is None  # lifted after the batch


# --- configuration changed under a running release ---------------------------------------------------------


def _reconfigured(ctx: Context, router: FakeRouter, prom: FakePrometheus, text: str) -> Context:
    other = Context(config=parse_config(text), redis_url=ctx.redis_url, prometheus_url=prom.url)
    other._routers["shop"] = router
    return other


def test_policy_removed_from_config_fails_release_to_stable(
    ctx: Context, router: FakeRouter, prom: FakePrometheus
) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)
    text = config_text().replace("policy: quick", "policy: canary").replace("name: quick", "name: quick-v2")
    new_ctx = _reconfigured(ctx, router, prom, text)
    out = str(tick(new_ctx, rid, get(ctx, rid).seq))
    assert out.startswith("fail"), out
    rel = get(ctx, rid)
    assert rel.state == "failed" and rel.weights_applied
    assert rel.reason is not None and "policy 'quick'" in rel.reason
    assert router.weights["api"] == {"2.0.0": 100, "2.1.0": 0}
    assert ctx.store.due_count() == 0
    new_ctx.store.r.close()


def test_service_removed_from_config_fails_release_without_looping(
    ctx: Context, router: FakeRouter, prom: FakePrometheus
) -> None:
    rid = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, rid, 0)
    new_ctx = _reconfigured(
        ctx, router, prom, config_text().replace("      - {name: api, policy: quick, stable_version: 2.0.0}\n", "")
    )
    assert new_ctx.config.find_service("api") == []
    out = str(tick(new_ctx, rid, get(ctx, rid).seq))
    assert out.startswith("fail"), out
    rel = get(ctx, rid)
    assert rel.state == "failed" and rel.reason is not None and "not in the configuration" in rel.reason
    # Sluice cannot reach this service's router any more: it says so and stops retrying.
    assert "router_error" in event_types(ctx, rid)
    assert ctx.store.due_count() == 0
    assert str(tick(new_ctx, rid, rel.seq)).startswith("failed")
    new_ctx.store.r.close()


def store_unclaimed(ctx: Context, release_id: str, version: str, at: float, first_tick_at: float) -> None:
    """A release of shop/web stored (with its first tick) by an intake that died before claiming
    the service: what `start_release` leaves if it is killed right after `store.create`."""
    release = Release(
        id=release_id,
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0.0",
        target_version=version,
        policy="canary",
        created_at=at,
        updated_at=at,
    )
    created = Event(at=at, type="created", message="webhook: stored, then the intake died")
    ctx.store.create(release, f"deploy:shop:web:{version}", created, first_tick_at=first_tick_at)


def test_intake_dying_after_storing_a_release_loses_nothing(ctx: Context, router: FakeRouter) -> None:
    """The intake stores the release with its first tick in one transaction, then claims the service.
    If it dies in between, the backstop tick claims the service itself: the older release in flight
    is aborted (traffic to stable first) and the new one starts."""
    old = start_release(ctx, "web", "1.1.0").release.id
    tick(ctx, old, 0)
    now = time.time()
    store_unclaimed(ctx, "r-orphan", "1.2.0", now, first_tick_at=now + CLAIM_BACKSTOP_SECONDS)
    # Nothing claimed the service; the backstop tick is there, a little in the future.
    assert ctx.store.active_release("shop", "web") == old
    assert due_score(ctx, "tick:r-orphan:0") == pytest.approx(now + CLAIM_BACKSTOP_SECONDS)

    assert str(tick(ctx, "r-orphan", 0)).startswith("start")
    assert get(ctx, old).state == "aborted"
    assert ctx.store.active_release("shop", "web") == "r-orphan"
    assert router.applied_weights("web")[-2:] == [{"1.0.0": 100}, {"1.0.0": 90, "1.2.0": 10}]
    # A repeated deploy notification finds it, as it would any release.
    assert start_release(ctx, "web", "1.2.0").release.id == "r-orphan"


def test_an_older_pending_release_does_not_take_the_service_from_a_newer_one(ctx: Context, router: FakeRouter) -> None:
    newer = start_release(ctx, "web", "1.3.0").release.id
    tick(ctx, newer, 0)
    before = time.time() - 60
    store_unclaimed(ctx, "r-older", "1.2.0", before, first_tick_at=before)
    assert str(tick(ctx, "r-older", 0)).startswith("abort: superseded")
    assert get(ctx, newer).state == "running" and ctx.store.active_release("shop", "web") == newer
    assert router.weights["web"]["1.3.0"] == 10


# --- the per-release lease ------------------------------------------------------------------------------


def test_release_lease_is_short_and_a_dead_holders_release_is_picked_up_within_it(
    ctx: Context, router: FakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.tick as tick_module

    assert tick_module.LEASE_TTL <= 10.0
    monkeypatch.setattr(tick_module, "LEASE_TTL", 1.0)
    rid = start_release(ctx, "api", "2.1.0").release.id
    # A worker killed inside a tick: it took the lease and will never renew nor release it.
    dead = ctx.store.lock("release:" + rid, ttl=tick_module.LEASE_TTL)
    assert dead.__enter__()
    taken = time.monotonic()
    assert tick(ctx, rid, 0).kind == TickKind.BUSY
    while (outcome := tick(ctx, rid, 0)).kind == TickKind.BUSY:
        assert time.monotonic() - taken < tick_module.LEASE_TTL + 1.0, "the dead holder's lease did not expire"
        time.sleep(0.05)
    assert outcome.kind == TickKind.DECIDED and str(outcome).startswith("start")
    assert len(router.calls) == 1


def test_a_long_tick_keeps_its_lease_past_the_ttl(
    ctx: Context, router: FakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.tick as tick_module

    monkeypatch.setattr(tick_module, "LEASE_TTL", 0.6)
    rid = start_release(ctx, "api", "2.1.0").release.id
    real_observe = tick_module.observe
    rivals: list[TickKind] = []

    def slow_observe(*args, **kwargs):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 2.0  # over three TTLs, during which others keep trying
        while time.monotonic() < deadline:
            rivals.append(tick(ctx, rid, 0).kind)
            time.sleep(0.2)
        return real_observe(*args, **kwargs)

    monkeypatch.setattr(tick_module, "observe", slow_observe)
    outcome = tick(ctx, rid, 0)
    assert outcome.kind == TickKind.DECIDED, outcome
    assert rivals and set(rivals) == {TickKind.BUSY}
    assert len(router.calls) == 1
    monkeypatch.setattr(tick_module, "observe", real_observe)
    assert tick(ctx, rid, 0).kind == TickKind.STALE  # the lease was released: not busy


def test_a_tick_that_lost_its_lease_does_not_record_or_act(
    ctx: Context, router: FakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.tick as tick_module

    monkeypatch.setattr(tick_module, "LEASE_TTL", 0.6)
    rid = start_release(ctx, "api", "2.1.0").release.id
    before = get(ctx, rid)
    real_observe = tick_module.observe

    def stolen(*args, **kwargs):  # type: ignore[no-untyped-def]
        # The worker stalls (e.g. a GC pause or a frozen VM) and another takes the release meanwhile.
        ctx.store.r.delete(PREFIX + "lock:release:" + rid)
        assert ctx.store.lock("release:" + rid, ttl=5).__enter__()
        time.sleep(0.5)  # past the heartbeat's renewal, which finds the lease taken
        return real_observe(*args, **kwargs)

    monkeypatch.setattr(tick_module, "observe", stolen)
    outcome = tick(ctx, rid, 0)
    assert outcome.kind == TickKind.LOST, outcome
    assert get(ctx, rid) == before
    assert router.calls == []
    assert event_types(ctx, rid) == ["created"]
