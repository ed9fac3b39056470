"""`sluice replay` on a REAL Prometheus serving promtool-imported history.

The "live" releases are run by the real tick path (observe → decide_next → commit_decision →
apply_weights, recorded in real Redis) at historical times, with the engine's clock set to them;
a router without counters (the replay's limit: router counts are not historical). Replaying them
must reproduce every decision at every evaluation; another policy must show where it differs.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import app.release.engine
import app.release.shadow
from app.analysis.replay import render, replay
from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Event, Release, ReleaseMode
from app.release.engine import apply_weights, commit_decision
from app.release.observe import observe
from app.release.shadow import read_weights
from tests.support.fakes import FakeRouter
from tests.support.prom_data import Traffic, openmetrics, serve_history
from workers.tick import decide_next

pytestmark = pytest.mark.integration

T0 = 1_700_000_000  # the releases start here (a deploy of each candidate)
START, END, STEP = T0 - 20 * 60, T0 + 30 * 60, 5

STABLE = Traffic("shop", "1.0.0", codes={"200": 99, "500": 1}, latencies=[(0.05, 95), (0.3, 5)])
# Slower than stable (20% vs 5% over 50 ms): within the canary's 20-point slow margin, far
# beyond the strict policy's default 1 point. Its tail is 6x stable's, which the whole-distribution
# comparison calls a regression: the canary policy turns that off.
GOOD = Traffic("shop", "1.0.1", codes={"200": 20}, latencies=[(0.05, 16), (0.3, 4)], born_at=T0 - 30)
BAD = Traffic("shop", "1.0.2", codes={"200": 17, "500": 3}, latencies=[(0.05, 19), (0.3, 1)], born_at=T0 - 30)

CONFIG = """
prometheus: {{url: "{prom}", timeout: 3s}}
applications:
  - name: store
    namespace: prod
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
      - {{name: shop, stable_version: 1.0.0, policy: canary}}
policies:
  - name: canary
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 50, duration: 1m}}, {{weight: 100, duration: 1m}}]
    judge: {{warmup: 10s, slow: {{margin: 0.2}}, latency: {{enabled: false}}}}
    checks:
      - {{name: fast, type: latency, under: 250ms, min: 0.7}}
  - name: strict
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 50, duration: 1m}}, {{weight: 100, duration: 1m}}]
    checks:
      - {{name: fast, type: latency, under: 250ms, min: 0.99}}
  - name: lenient
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 50, duration: 1m}}, {{weight: 100, duration: 1m}}]
    judge: {{errors: {{enabled: false}}}}
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("prom")
    proc, url = serve_history(workdir, openmetrics([STABLE, GOOD, BAD], START, END, STEP))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def ctx(redis_url: str, prometheus: str) -> Context:
    context = Context(config=parse_config(CONFIG.format(prom=prometheus)), redis_url=redis_url)
    context._routers["store"] = FakeRouter({"shop": {"1.0.0": 100}})  # type: ignore[assignment]
    return context


def run_live(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, target: str, start: float, mode: ReleaseMode = "live"
) -> Release:
    """A release through the real tick path, at historical times (tick every 10 s, act 0.4 s later)."""
    clock = [start]
    monkeypatch.setattr(app.release.engine, "time", types.SimpleNamespace(time=lambda: clock[0]))
    monkeypatch.setattr(app.release.shadow, "time", types.SimpleNamespace(time=lambda: clock[0]))
    release = Release(
        id=f"r-{target}",
        application="store",
        namespace="prod",
        service="shop",
        source_version="1.0.0",
        target_version=target,
        policy="canary",
        created_at=start,
        updated_at=start,
        mode=mode,
    )
    ctx.store.create(release, f"dedup-{target}-{mode}", Event(at=start, type="created", message="test"))
    t = start
    for _ in range(200):
        loaded = ctx.store.get(release.id)
        assert loaded is not None
        if loaded.terminal:
            return loaded
        if loaded.shadow and loaded.state == "running":
            loaded = read_weights(ctx, loaded)  # as workers.tick.tick does
        obs = observe(ctx, loaded, t)
        decision = decide_next(ctx, loaded, obs, t)
        clock[0] = t
        recorded = commit_decision(ctx, loaded, decision, t)
        clock[0] = t + 0.4
        apply_weights(ctx, recorded)
        t += 10.0
    raise AssertionError("the release did not end")


def test_a_bad_release_replays_to_the_same_decisions(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    live = run_live(ctx, monkeypatch, "1.0.2", T0)
    assert live.state == "failed", live.reason
    result = replay(ctx, live.id)
    text = render(result)
    assert not result.differences, text
    assert result.final.state == "failed" and result.final.step == live.step
    assert result.final.reason == live.reason, text  # the same failing check at the same step
    assert len(result.steps) >= 2
    assert "not historical" in text


def test_a_good_release_replays_and_a_stricter_policy_is_a_difference(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = run_live(ctx, monkeypatch, "1.0.1", T0)
    assert live.state == "succeeded", live.reason
    same = replay(ctx, live.id)
    assert not same.differences and same.final.state == "succeeded", render(same)

    strict = replay(ctx, live.id, "strict")
    text = render(strict)
    assert strict.final.state == "failed" and strict.differences, text
    assert "slow-vs-stable" in (strict.final.reason or "") and "≠" in text


def test_a_looser_policy_would_have_passed_the_bad_release(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    live = run_live(ctx, monkeypatch, "1.0.2", T0)
    result = replay(ctx, live.id, "lenient")
    text = render(result)
    assert result.differences, text
    assert result.final.state != "failed", text
    assert "policy lenient instead of canary" in text


def test_a_shadow_release_replays_on_the_weights_it_read(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    # The router (never changed) keeps stable at 100%: the candidate's history is traffic sent by hand.
    live = run_live(ctx, monkeypatch, "1.0.1", T0, mode="shadow")
    assert live.state == "succeeded" and live.observed_weights == {"1.0.0": 100}, live.reason
    assert [w for _, w in ctx._routers["store"].applied] == []  # type: ignore[attr-defined]
    result = replay(ctx, live.id)
    text = render(result)
    assert not result.differences and result.final.state == "succeeded", text
    assert result.final.reason == live.reason, text
