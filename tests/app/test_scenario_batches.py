"""`python -m scenarios` runs a policy's scenarios in batches the machine can load (scenarios/__main__.py)."""

from __future__ import annotations

from scenarios.__main__ import MAX_RATE, batches, mean_rate
from scenarios.catalog import SCENARIOS


def test_the_catalog_runs_in_order_in_batches_under_the_rate_one_load_generator_keeps_up_with() -> None:
    parts = batches(SCENARIOS)
    assert [s.name for part in parts for s in part] == [s.name for s in SCENARIOS]
    assert len(parts) >= 2  # the whole catalog (~1,240 req/s) overloads one run
    for part in parts:
        assert part and sum(mean_rate(s.pattern) for s in part) <= MAX_RATE


def test_a_spiky_pattern_counts_at_its_mean_rate() -> None:
    spiky = next(s for s in SCENARIOS if s.traffic == "spiky")
    assert mean_rate(spiky.pattern) == 15 + (120 - 15) * 2 / 10  # 15 req/s, 120 for 2 s in every 10
