"""Power for 4xx responses: Sluice's detection times next to the oracle's (see test_judge_power.py)."""

from __future__ import annotations

from tests.app.test_judge_power import RELEASES
from tests.app.test_judge_simulation import POLICIES
from tests.support.power import assert_below_the_floor_mostly_caught, assert_within_twice_the_oracle, printed, table


def test_every_client_error_regression_that_matters_is_caught_within_twice_the_oracle() -> None:
    cells = printed(table(POLICIES["defaults"], RELEASES, kinds=("4xx",)), "power, 4xx, policy 'defaults'")
    assert_within_twice_the_oracle(cells, at_least=8)
    assert_below_the_floor_mostly_caught(cells)
