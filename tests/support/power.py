"""Sluice's detection times next to the oracle's (tests/support/oracle.py), per regression class,
size and traffic level: the table of docs/judging.md ("Power").

Sluice: releases simulated through the real decide() (tests/support/simulate.py), policy *defaults*
(10%:2m, 50%:2m, 100%:1m, every 10 s); its detection time is when the release was rolled back
(promoted: never). The oracle: Wald's SPRT knowing both rates, testing p_s + margin against the
candidate's rate at the α each comparison has over the release (the README's 0.01 over the
comparisons), on the same traffic schedule without holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.config.policy import PolicyConfig
from app.core.judge.evidence import DEFAULTS
from tests.support import oracle
from tests.support.simulate import Rates, Scenario, run_release

BASE = Rates(errors=0.005, client=0.05, slow=0.02)  # stable: 0.5% 5xx, 5% 4xx, 2% over 500 ms
KIND_FIELD = {"errors": "errors", "4xx": "client", "slow": "slow"}
# Candidate rates per class: +0.5 point to 100%.
SIZES = {
    "errors": (0.010, 0.015, 0.025, 0.055, 0.205, 1.0),
    "4xx": (0.07, 0.10, 0.15, 0.35, 1.0),
    "slow": (0.04, 0.07, 0.12, 0.32, 1.0),
}
TRAFFIC = (10.0, 40.0, 200.0)  # requests per second, both versions
COMPARISONS = 4  # errors, 4xx, slow, latency: the README's alpha is split over them
WARMUP = 15.0  # latency is judged after the candidate's warmup (policy default)
# A cell whose oracle needs longer than this (at Sluice's looks) is beyond what a release of this
# policy can show: reported, not held to the 2x goal.
IN_REACH = 300.0


@dataclass(frozen=True)
class Cell:
    kind: str
    stable: float
    candidate: float
    rate: float
    sluice: float  # median detection time, s (inf: promoted in half or more)
    detected: float  # share of releases rolled back
    oracle: float  # the oracle's median, every request
    oracle_looks: float  # the oracle's median, at Sluice's evaluations

    @property
    def ratio(self) -> float:
        return self.sluice / self.oracle_looks if math.isfinite(self.oracle_looks) else math.nan

    @property
    def in_reach(self) -> bool:
        return self.oracle_looks <= IN_REACH

    def row(self) -> str:
        size = f"+{100 * (self.candidate - self.stable):.3g} points" if self.candidate < 1 else "100 %"
        return (
            f"| {self.kind:6s} | {size:12s} | {self.rate:5.0f} | {_s(self.oracle)} | {_s(self.oracle_looks)} | "
            f"{_s(self.sluice)} ({self.detected:.0%}) | {self.ratio:.2f} |"
        )


HEADER = (
    "| class  | size         | req/s | oracle, every request | oracle, every 10 s | Sluice (detected) | ratio |\n"
    "|--------|--------------|-------|-----------------------|--------------------|-------------------|-------|"
)


def _s(t: float) -> str:
    return f"{t:.0f} s" if math.isfinite(t) else "never"


def steps_of(policy: PolicyConfig) -> list[tuple[float, float]]:
    return [(float(s.weight), float(s.duration or 0.0)) for s in policy.steps]


def cell(
    policy: PolicyConfig, kind: str, candidate: float, rate: float, releases: int, seed: int = 11, runs: int = 400
) -> Cell:
    field = KIND_FIELD[kind]
    stable = getattr(BASE, field)
    scenario = Scenario(stable=BASE, candidate=Rates(**{**BASE.__dict__, field: candidate}))
    rng = np.random.default_rng(seed)
    outcomes = [run_release(policy, scenario, rng, rate=rate) for _ in range(releases)]
    times = np.array([o.at if o.kind == "fail" else math.inf for o in outcomes])
    p0 = stable + DEFAULTS[kind].margin
    alpha = policy.judge.alpha / COMPARISONS
    kw = dict(rate=rate, steps=steps_of(policy), alpha=alpha, runs=runs, skip=WARMUP if kind == "slow" else 0.0)
    every = oracle.detection_times(p0, candidate, rng=rng, **kw)  # type: ignore[arg-type]
    looks = oracle.detection_times(p0, candidate, rng=rng, looks=policy.interval, **kw)  # type: ignore[arg-type]
    return Cell(
        kind, stable, candidate, rate, oracle.median(times), float(np.isfinite(times).mean()),
        oracle.median(every), oracle.median(looks),
    )  # fmt: skip


def table(
    policy: PolicyConfig, releases: int, traffic: tuple[float, ...] = TRAFFIC, kinds: tuple[str, ...] = tuple(SIZES)
) -> list[Cell]:
    """The cells of `kinds` (each cell seeds its own generator: a class's rows are the same whether
    the table is made whole or by class, as tests/app/test_judge_power_*.py make it, one file a class
    so that the suite's workers share them)."""
    return [cell(policy, kind, size, rate, releases) for kind in kinds for size in SIZES[kind] for rate in traffic]


def owed(c: Cell) -> bool:
    """A regression Sluice promises to catch: at least the promotion floor (errors: max(3x stable,
    stable + 1 point); 4xx and slow: 10 points). Smaller ones may be promoted by design once the data
    rule the floor out (docs/judging.md, "The promotion floor")."""
    d = DEFAULTS[c.kind]
    floor = max(c.stable * (d.times_stable or 1.0), c.stable + d.detectable)
    return c.candidate >= floor - 1e-12


def printed(cells: list[Cell], title: str) -> list[Cell]:
    print(f"\n{title}:\n{HEADER}")
    for c in cells:
        print(c.row() + ("" if owed(c) else " below the floor") + ("" if c.in_reach else " out of reach"))
    return cells


def assert_within_twice_the_oracle(cells: list[Cell], at_least: int) -> None:
    """Goal (issue #22): median detection time at most 2x the oracle's at Sluice's looks, for every
    size at or over the floor and traffic level where the oracle itself catches it within the
    release's 5 minutes; every such release caught; a broken version (100% bad) at the first looks."""
    goal = [c for c in cells if c.in_reach and owed(c)]
    assert len(goal) >= at_least
    late = [c.row() for c in goal if not c.ratio <= 2.0]
    assert not late, "\n".join(late)
    assert all(c.detected == 1.0 for c in goal)
    assert all(c.sluice <= 30 for c in cells if c.candidate == 1.0)


def assert_below_the_floor_mostly_caught(cells: list[Cell]) -> None:
    """Below the floor Sluice may promote once the floor is ruled out; within the oracle's reach it
    still catches most of them."""
    below = [c for c in cells if c.in_reach and not owed(c)]
    assert below and sum(c.detected for c in below) / len(below) >= 0.5
