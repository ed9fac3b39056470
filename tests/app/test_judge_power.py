"""Power: how long Sluice takes to catch a regression, next to the best possible test (the oracle:
Wald's SPRT knowing both rates, tests/support/oracle.py), per class (errors, 4xx, slow), size
(+0.5 point to 100%) and traffic level. The table in docs/judging.md ("Power") comes from here:

    .venv/bin/pytest tests/app/test_judge_power.py -s

Fixed seeds. False rollbacks of identical versions (A/A, at most 1%) are
tests/app/test_judge_simulation.py's, under the same judge.
"""

from __future__ import annotations

import time

import pytest

from app.core.judge.evidence import DEFAULTS
from tests.app.test_judge_simulation import POLICIES
from tests.support.power import HEADER, Cell, table

RELEASES = 30  # per cell; the oracle's medians from 400 runs each


def owed(c: Cell) -> bool:
    """A regression Sluice promises to catch: at least the promotion floor (errors: max(3x stable,
    stable + 1 point); 4xx and slow: 10 points). Smaller ones may be promoted by design once the data
    rule the floor out (docs/judging.md, "The promotion floor")."""
    d = DEFAULTS[c.kind]
    floor = max(c.stable * (d.times_stable or 1.0), c.stable + d.detectable)
    return c.candidate >= floor - 1e-12


@pytest.fixture(scope="module")
def cells() -> list[Cell]:
    started = time.perf_counter()
    out = table(POLICIES["defaults"], RELEASES)
    print(
        f"\npower, policy 'defaults' (10%:2m, 50%:2m, 100%:1m, every 10 s), stable 0.5% errors, 5% 4xx, "
        f"2% slow; {RELEASES} releases a cell [{time.perf_counter() - started:.0f} s]:\n{HEADER}"
    )
    for c in out:
        print(c.row() + ("" if owed(c) else " below the floor") + ("" if c.in_reach else " out of reach"))
    return out


def test_every_regression_that_matters_is_caught_within_twice_the_oracle(cells):
    """Goal (issue #22): median detection time at most 2x the oracle's at Sluice's looks, for every
    class, size at or over the floor and traffic level where the oracle itself catches it within
    the release's 5 minutes."""
    goal = [c for c in cells if c.in_reach and owed(c)]
    assert len(goal) >= 20
    late = [c.row() for c in goal if not c.ratio <= 2.0]
    assert not late, "\n".join(late)
    assert all(c.detected == 1.0 for c in goal)


def test_smaller_regressions_are_mostly_caught_too(cells):
    """Below the floor Sluice may promote once the floor is ruled out; within the oracle's reach it
    still catches most of them, and a broken version (100% bad) at the first look."""
    below = [c for c in cells if c.in_reach and not owed(c)]
    assert sum(c.detected for c in below) / len(below) >= 0.5
    assert all(c.sluice <= 30 for c in cells if c.candidate == 1.0)
