"""Simulated releases through the real decision core: false rollbacks of identical versions (A/A)
and how fast regressions are caught, under the engine as built (per-step counts, evidence carried
across steps, stable's baseline at 100%, warmup, the router's view). In-process, no servers:
tests/support/simulate.py generates the counts and applies each decision like the engine.

The figures in docs/judging.md come from here:

    .venv/bin/pytest tests/app/test_judge_simulation.py -s

Fixed seeds: the same numbers on every run.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest

from app.core.config.policy import PolicyConfig
from tests.support.latency_sim import oracle_times
from tests.support.simulate import CrashLoop, Outcome, Rates, Scenario, run_release

STEPS = [{"weight": 10, "duration": "2m"}, {"weight": 50, "duration": "2m"}, {"weight": 100, "duration": "1m"}]
POLICIES = {
    # No checks: the comparisons with stable at their defaults (errors, 4xx, slow).
    "defaults": PolicyConfig.model_validate({"name": "defaults", "interval": "10s", "steps": STEPS}),
    # As in docs/judging.md: the error margin is 1 point, and "90% under 500 ms" is an absolute guard.
    "readme": PolicyConfig.model_validate(
        {
            "name": "readme",
            "interval": "10s",
            "steps": STEPS,
            "tolerance": 1,
            "checks": [
                {"name": "fast-responses", "type": "latency", "under": "500ms", "min": 0.9},
                {"name": "errors", "type": "error_rate", "max_over_stable": 0.01},
            ],
        }
    ),
}

AA_RELEASES = 1000


def aa_rates(rng: np.random.Generator) -> Rates:
    """A service's base rates: 5xx 0-2%, 4xx 0-10%, slow 0-5%."""
    return Rates(errors=rng.uniform(0, 0.02), client=rng.uniform(0, 0.10), slow=rng.uniform(0, 0.05))


@pytest.mark.parametrize("name", list(POLICIES))
def test_identical_versions_are_rarely_rolled_back(name):
    """A/A: 1,000 releases of a candidate identical to stable; fewer than 1% may be rolled back."""
    policy = POLICIES[name]
    rng = np.random.default_rng(20240611)
    started = time.perf_counter()
    outcomes = []
    for _ in range(AA_RELEASES):
        rates = aa_rates(rng)
        outcomes.append(run_release(policy, Scenario(stable=rates, candidate=rates), rng))
    failed = [o for o in outcomes if o.kind != "promote"]
    rate = len(failed) / len(outcomes)
    durations = [o.at for o in outcomes if o.kind == "promote"]
    print(
        f"\nA/A, policy {name!r}: {len(failed)} of {len(outcomes):,} releases rolled back ({rate:.1%}); "
        f"promoted after median {np.median(durations):.0f} s, max {max(durations):.0f} s "
        f"[{time.perf_counter() - started:.0f} s]"
    )
    for o in failed:
        print(f"  rolled back at {o.at:.0f} s (step {o.step + 1}): {o.reason}")
    assert rate < 0.01
    # Nothing else happens to a good version: it is promoted, at most a few evaluations late.
    assert all(o.kind == "promote" for o in outcomes if o not in failed)
    assert np.median(durations) <= 320


# --- detection -------------------------------------------------------------------------------------

BASE = Rates(errors=0.005, client=0.05, slow=0.02)  # stable: 0.5% 5xx, 5% 4xx, 2% over 500 ms


def worse(**kw: float) -> Scenario:
    return Scenario(stable=BASE, candidate=Rates(**{**BASE.__dict__, **kw}))


# name -> (scenario, evaluation interval (None: the policy's), releases)
SCENARIOS = {
    "50% errors, every 2 s": (worse(errors=0.5), 2.0, 400),
    "+2 points of errors": (worse(errors=0.025), None, 100),
    "+1 point of errors": (worse(errors=0.015), None, 100),
    "+5 points slow": (worse(slow=0.07), None, 100),
    "+10 points 4xx": (worse(client=0.15), None, 100),
    "crash loop": (Scenario(stable=BASE, candidate=BASE, crash_loop=CrashLoop()), None, 200),
    "25% slower, every response": (worse(scale=1.25), None, 100),
    "35% slower, every response": (worse(scale=1.35), None, 100),
}


def detect(policy: PolicyConfig, name: str, seed: int = 7) -> list[Outcome]:
    scenario, interval, n = SCENARIOS[name]
    rng = np.random.default_rng(seed)
    return [run_release(policy, scenario, rng, interval=interval) for _ in range(n)]


def summary(name: str, outcomes: list[Outcome], interval: float) -> str:
    """Detected before promotion (share), detection time (seconds since the candidate first took
    traffic: median, p90), the share caught at the first evaluation, and where and by what."""
    caught = [o for o in outcomes if o.kind == "fail"]
    times = np.array([o.at for o in caught])
    text = f"{name:24s} detected {len(caught) / len(outcomes):4.0%} of {len(outcomes)}"
    if len(caught):
        text += f"; median {np.median(times):.0f} s, p90 {np.percentile(times, 90):.0f} s"
        text += f"; at the first evaluation {share(outcomes, by=interval):.0%}"
        by_step = collections.Counter(o.step + 1 for o in caught)
        text += "; at step " + ", ".join(f"{s}: {c}" for s, c in sorted(by_step.items()))
        how = collections.Counter(_how(o) for o in caught)
        text += "; by " + ", ".join(f"{k} {v}" for k, v in how.most_common())
    return text


def _how(o: Outcome) -> str:
    if o.failed:
        return o.failed[0]
    return "evidence timeout" if "not enough evidence" in o.reason else o.reason[:40]


def share(outcomes: list[Outcome], by: float = float("inf")) -> float:
    return sum(o.kind == "fail" and o.at <= by for o in outcomes) / len(outcomes)


@pytest.fixture(scope="module")
def detection() -> dict[str, list[Outcome]]:
    policy = POLICIES["defaults"]
    started = time.perf_counter()
    results = {name: detect(policy, name) for name in SCENARIOS}
    print(
        "\ndetection, policy 'defaults' (10%:2m, 50%:2m, 100%:1m, every 10 s), 40 req/s, "
        f"stable 0.5% errors, 5% 4xx, 2% slow [{time.perf_counter() - started:.0f} s]:"
    )
    for name, outcomes in results.items():
        print("  " + summary(name, outcomes, SCENARIOS[name][1] or policy.interval))
    return results


def test_half_errors_is_caught_within_seconds(detection):
    """50% errors at 10% of 40 req/s, evaluated every 2 s: a handful of requests suffice."""
    res = detection["50% errors, every 2 s"]
    assert share(res) == 1.0
    assert all(o.step == 0 and o.failed[0] == "errors-vs-stable" for o in res)
    assert share(res, by=2) >= 0.35  # the first evaluation: ~8 candidate requests
    assert share(res, by=4) >= 0.85
    assert share(res, by=8) >= 0.99


def test_small_regressions_are_caught(detection):
    two = detection["+2 points of errors"]
    assert share(two) >= 0.85
    # Within twice the oracle's median (tests/app/test_judge_power.py: ~120 s at Sluice's looks). A
    # candidate that looks somewhat worse no longer holds the 10% step: its evidence goes on to 50%.
    assert np.median([o.at for o in two if o.kind == "fail"]) <= 240
    # +1 point on stable's 0.5%: the data rarely show it in a 5-minute release at 40 req/s, but it
    # is three times stable's errors, the promotion floor (docs/judging.md): it is never promoted --
    # held at its small step, or failed on the evidence timeout.
    one = detection["+1 point of errors"]
    assert share(one) >= 0.95
    # What cannot be detected quickly at 4 req/s (docs/judging.md): +2 points within 30 s, +1 point
    # within 2 minutes.
    assert share(two, by=30) < 0.05 and share(one, by=120) < 0.05


def test_slow_and_client_errors(detection):
    slow = detection["+5 points slow"]
    assert share(slow) >= 0.95 and share(slow, by=240) >= 0.7
    client = detection["+10 points 4xx"]
    assert share(client) == 1.0 and share(client, by=120) >= 0.8


def test_crash_loop_is_caught_at_the_first_step(detection):
    res = detection["crash loop"]
    assert share(res) == 1.0 and all(o.step == 0 for o in res)
    assert share(res, by=60) >= 0.9


def test_crash_loop_with_a_tolerance():
    """With `tolerance: 1`, one failed health evaluation is tolerated; a second, or being taken out
    of service twice in the step, fails the release."""
    res = detect(POLICIES["readme"], "crash loop")
    print("\ncrash loop, policy 'readme' (tolerance 1): " + summary("crash loop", res, POLICIES["readme"].interval))
    assert share(res) == 1.0 and all(o.step == 0 for o in res)
    assert share(res, by=90) >= 0.9


def test_slower_across_the_board(detection):
    """Every response 25% or 35% slower: never promoted. Under the defaults the slow comparison is
    often first (this simulation's widest bucket, 250-500 ms, spills over stable's 500 ms bound); with
    it off, the latency comparison alone. Next to them, the oracle (tests/support/latency_sim.py):
    Wald's SPRT knowing both distributions, against identical versions and against a version exactly
    at the latency margin (10% slower, the boundary any valid test of "at most 10% slower" must spare)."""
    steps = [(0.1, 120.0), (0.5, 120.0), (1.0, 60.0)]
    latency_only = PolicyConfig.model_validate(
        {"name": "latency-only", "interval": "10s", "steps": STEPS, "judge": {"slow": {"enabled": False}}}
    )
    for name, scale in (("25% slower, every response", 1.25), ("35% slower, every response", 1.35)):
        res = detection[name]
        rng = np.random.default_rng(7)
        alone = [run_release(latency_only, worse(scale=scale), rng) for _ in range(40)]
        oracle = np.median(oracle_times(scale, BASE.slow, steps, np.random.default_rng(3)))
        at_margin = np.median(oracle_times(scale, BASE.slow, steps, np.random.default_rng(3), versus=1.1))
        print(
            f"\n{name}: Sluice median {np.median([o.at for o in res if o.kind == 'fail']):.0f} s; "
            f"latency comparison alone {np.median([o.at for o in alone if o.kind == 'fail']):.0f} s; "
            f"oracle {oracle:.0f} s (vs identical), {at_margin:.0f} s (vs 10% slower)"
        )
        assert share(res) == 1.0 and share(alone) == 1.0
        assert all(o.failed == ["latency-vs-stable"] or "evidence" in o.reason for o in alone)
