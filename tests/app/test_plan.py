"""The α plan (app/core/judge/plan.py): a test supermartingale over the release's steps that starts at
1 and does not jump at a step's boundary, and priors that lean on what was seen before the step."""

from __future__ import annotations

import math

import pytest

from app.core.judge.mixture import DEFAULT_PRIOR
from app.core.judge.plan import candidate_prior, carry, informed_prior, spending, step_weights


def test_weights_halve_and_spend_the_whole_alpha():
    w = step_weights(3)
    assert w == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert sum(step_weights(5)) == pytest.approx(1.0)


def test_the_release_evidence_starts_at_one_and_carries_across_a_step_without_a_jump():
    plan = spending(None, 0, 3, 0.01 / 3)
    assert plan.log_wealth(0.0) == pytest.approx(0.0)  # W_0 = 1: nothing spent before any data
    # Step 1 ends with E = 20; at the start of step 2 (E_2 = 1) W is what it was at the end of step 1.
    at_end = plan.log_wealth(math.log(20.0))
    nxt = spending(carry(plan, math.log(20.0), 0, 3), 1, 3, 0.01 / 3)
    assert nxt.log_wealth(0.0) == pytest.approx(at_end)
    # A step without evidence in between counts as E = 1.
    skipped = spending(carry(plan, math.log(20.0), 0, 3), 2, 3, 0.01 / 3)
    assert skipped.log_wealth(0.0) == pytest.approx(at_end)
    # The first step fails at E >= 300 / (4/7) = 525, not Bonferroni's 900.
    assert plan.log_wealth(math.log(524.0)) < plan.threshold <= plan.log_wealth(math.log(526.0))


def test_priors_lean_on_the_rate_seen_before_the_step():
    assert informed_prior(None) is DEFAULT_PRIOR and candidate_prior(None, None) is DEFAULT_PRIOR
    seen = informed_prior((120.0, 24_000.0))  # stable at 0.5% before the release
    # 0.5% is far more likely under it than under the default; 20% costs at most log 4.
    assert seen.log_marginal(5, 995) > DEFAULT_PRIOR.log_marginal(5, 995) + 1.0
    assert seen.log_marginal(200, 800) >= DEFAULT_PRIOR.log_marginal(200, 800) - math.log(4) - 1e-9
    # The candidate's first-step prior favours max(3x stable, stable + 1 point) = 15% for 4xx at 5%.
    cand = candidate_prior(None, (1_200.0, 24_000.0))
    assert cand.log_marginal(15, 85) > DEFAULT_PRIOR.log_marginal(15, 85)
