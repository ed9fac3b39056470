"""The statistical core of the judge: is the candidate worse than stable, given counts?

Pure Python (``math`` only), no I/O, no imports from the rest of Sluice. See docs/judging.md.

The question
------------
For one kind of bad outcome (5xx and proxy errors, 4xx, slow responses) we have, over the same
span, ``bad_c`` of ``n_c`` candidate requests and ``bad_s`` of ``n_s`` stable requests (or a stable
*baseline* gathered earlier, when stable has no live traffic). Requests of a version are modelled as
independent Bernoulli trials with rate ``p_c`` (candidate) or ``p_s`` (stable). The judge tests

    H0: p_c - p_s <= margin          (the candidate is at most ``margin`` worse; it may be better)

and it is consulted every interval on counts that keep growing, so the test must be *anytime-valid*:
the probability that it EVER rejects a true H0, however often it is looked at, is at most alpha.

The construction (a two-sample mixture e-process, universal inference) and its prior are in
app/core/judge/mixture.py.

Verdicts
--------
* ``fail``: E_t >= 1/alpha (alpha already split across the checks and steps of the release, see
  :func:`check_alpha`). ``decisive`` when E_t >= 1000/alpha, or the observed difference is at least
  ``decisive_gap`` (e.g. a candidate answering mostly errors): the caller fails at once, without
  tolerance. Decisive implies fail, so it inherits the same false-alarm bound.
* ``pass``: not failing and the confidence sequence already excludes a regression of ``detectable``
  or more (its upper end is below ``detectable``). That is the evidence floor: a step cannot pass
  before it has seen enough traffic to rule out that much harm.
* ``insufficient``: neither; hold the step (the caller bounds the hold with a timeout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from app.core.judge.floor import floor_requests, log_e_against_floor
from app.core.judge.mixture import (
    DEFAULT_PRIOR,
    BetaMixture,
    difference_interval,
    log_e_over_limit,
    log_e_value,
    required_requests,
)
from app.core.judge.plan import Spending

Verdict = Literal["fail", "pass", "insufficient"]

__all__ = [
    "DEFAULTS",
    "DEFAULT_PRIOR",
    "DEFAULT_RELEASE_ALPHA",
    "BetaMixture",
    "CheckDefaults",
    "Evidence",
    "Verdict",
    "check_alpha",
    "difference_interval",
    "judge",
    "log_e_over_limit",
    "log_e_value",
    "required_requests",
]


# --------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------


#: Probability that a release of identical versions is rolled back, at most (split by check_alpha).
DEFAULT_RELEASE_ALPHA = 0.01


@dataclass(frozen=True)
class CheckDefaults:
    """Per kind of bad outcome: the practical margin, the evidence floor and the decisive gap (all as rates)."""

    margin: float  # H0: p_c - p_s <= margin. Worse than stable by more than this is a regression.
    detectable: float  # pass only once the data exclude a regression of this size (the evidence floor)
    decisive_gap: float  # a failing check whose observed difference is at least this fails at once
    # Promotion also rules out more than this many times stable's rate (app/core/judge/floor.py);
    # None: the floor is `detectable` points above stable alone.
    times_stable: float | None = None
    # A step before the last passes once the data rule out this many points (absolute; None:
    # `detectable`): the relative floor is owed before promotion, not at every step.
    step_floor: float | None = None


#: Chosen with the simulations in tests/app/test_evidence.py; the reasoning is in docs/judging.md.
DEFAULTS: dict[str, CheckDefaults] = {
    # 5xx + proxy-side errors (connection errors, resets, timeouts at the proxy). A 1-point margin
    # detects +2 points in only 10-16% of simulated 5-minute releases; 0.25 point in 86% (docs/judging.md).
    # Promotion rules out max(3 x stable, stable + 1 point): a +5-point floor let 1.5% through
    # against stable's 0.3% (five times the errors); with stable at 0.05-1% this floor costs
    # 1,500-3,100 candidate requests (docs/judging.md, "The promotion floor"). Twice stable cost
    # up to 10,000 (a 10 req/s service at 1% could not be promoted within the evidence timeout),
    # and stable + 0.5 point failed 9% of simulated A/A releases on the timeout: stable's own
    # counts (6,700 over a 5-minute release at 40 req/s) could not pin it that closely.
    "errors": CheckDefaults(margin=0.0025, detectable=0.01, decisive_gap=0.20, times_stable=3.0, step_floor=0.05),
    # 4xx: services answer some legitimately; a jump in the share is what matters.
    "4xx": CheckDefaults(margin=0.01, detectable=0.10, decisive_gap=0.30),
    # Slow responses: over the latency bound, over the largest bucket, or cut by a timeout.
    "slow": CheckDefaults(margin=0.01, detectable=0.10, decisive_gap=0.30),
}

#: Evidence this many times stronger than the failing threshold is decisive.
DECISIVE_FACTOR = 1000.0


def check_alpha(release_alpha: float = DEFAULT_RELEASE_ALPHA, n_checks: int = 1, n_steps: int = 1) -> float:
    """The alpha of one check in one step, so that identical versions fail a release with probability <= release_alpha.

    Bonferroni: each (check, step) pair is its own sequential test (each step's counts start when
    its weights are confirmed, so that both versions are compared over the same span at one traffic
    split), and the release fails if any of them does.
    """
    if not 0 < release_alpha < 1:
        raise ValueError("release_alpha must be in (0, 1)")
    if n_checks < 1 or n_steps < 1:
        raise ValueError("n_checks and n_steps must be >= 1")
    return release_alpha / (n_checks * n_steps)


# --------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One check's evidence at one evaluation: counts, rates, estimate and interval, evidence, verdict."""

    kind: str
    bad_c: float
    n_c: float
    bad_s: float
    n_s: float
    rate_c: float
    rate_s: float
    estimate: float  # rate_c - rate_s
    lower: float  # (1 - alpha) confidence sequence for p_c - p_s
    upper: float
    margin: float
    detectable: float
    alpha: float
    log_e: float  # log of the e-value against H0: p_c - p_s <= margin
    verdict: Verdict
    decisive: bool
    needed_n_c: int | None  # the evidence floor's projected candidate count (None once passed/failed)
    reference: str = "stable"  # "stable" (same span) or e.g. "stable baseline"
    times_stable: float | None = None  # the floor's relative part (None: `detectable` points alone)
    # With α spent by a plan over the steps (app/core/judge/plan.py): log of the release's evidence
    # W_t, which fails the comparison at `fail_at` (log(1/α) of the comparison over the release).
    log_wealth: float | None = None
    fail_at: float | None = None

    @property
    def e_value(self) -> float:
        return math.exp(self.log_e) if self.log_e < 700 else math.inf

    @property
    def p_value(self) -> float:
        """Always-valid p-value: min(1, 1/E)."""
        return math.exp(-self.log_e) if self.log_e > 0 else 1.0

    def floor_words(self) -> str:
        """The promotion floor, e.g. "max(3x stable, stable + 1 point)"."""
        return f"max({self.times_stable:g}x {self.reference}, {self.reference} + {_points(self.detectable)})"

    def sentence(self) -> str:
        """In words, e.g. "errors 3.1% vs stable 0.4% (n=812 vs 7,310): worse by more than 0.25 points, ..."."""
        head = (
            f"{self.kind} {_pct(self.rate_c)} vs {self.reference} {_pct(self.rate_s)} "
            f"(n={_count(self.n_c)} vs {_count(self.n_s)})"
        )
        if self.verdict == "fail":
            shown = self.e_value if self.log_wealth is None else math.exp(min(self.log_wealth, 700))
            tail = f"worse by more than {_points(self.margin)}, evidence {_evidence(shown)}"
            if self.decisive:
                tail += " (decisive)"
        elif self.verdict == "pass":
            tail = (
                f"no evidence of being worse (difference {_signed_points(self.lower)} "
                f"to {_signed_points(self.upper)} points)"
            )
            if self.times_stable is not None:
                tail += f"; rules out more than {self.floor_words()}"
        elif self.n_c == 0:
            tail = "no candidate traffic yet"
        elif self.n_s == 0:
            tail = f"no {self.reference} traffic to compare with"
        elif self.estimate > self.margin:
            shown, at = self.e_value, 1 / self.alpha
            if self.log_wealth is not None and self.fail_at is not None:
                shown, at = math.exp(min(self.log_wealth, 700)), math.exp(self.fail_at)
            tail = (
                f"looks worse by {_points(self.estimate)}, not conclusive yet "
                f"(evidence {_evidence(shown)}, fails at 1/{_count(at)})"
            )
        elif self.needed_n_c is not None:
            tail = f"not enough traffic yet: {_count(self.n_c)} of ~{_count(self.needed_n_c)} requests needed"
            if self.times_stable is not None:
                tail += f" to rule out more than {self.floor_words()}"
        else:
            tail = "not enough traffic yet"
        return f"{head}: {tail}"


def judge(
    kind: str,
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    *,
    alpha: float,
    margin: float | None = None,
    detectable: float | None = None,
    decisive_gap: float | None = None,
    prior: BetaMixture = DEFAULT_PRIOR,
    reference: str = "stable",
    times_stable: float | None = None,
    plan: Spending | None = None,
    priors: tuple[BetaMixture, BetaMixture] | None = None,
) -> Evidence:
    """Judge one check at one evaluation.

    ``alpha`` is this check's level in this step (see :func:`check_alpha`). ``margin``,
    ``detectable`` and ``decisive_gap`` default to ``DEFAULTS[kind]``. Counts are cumulative over
    the same span for both versions (or a fixed stable baseline, with ``reference`` saying so).
    ``times_stable`` (> 1) makes promotion's floor relative: pass once the data rule out
    p_c > max(times_stable x p_s, p_s + detectable) (app/core/judge/floor.py); it defaults to the
    kind's, and 1 (or None without a default) is the floor of `detectable` points alone.
    ``plan``: fail on the release's evidence (app/core/judge/plan.py) with ``priors`` (candidate's,
    stable's; default ``prior``); ``alpha`` then sets the interval and the floor only."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    base = DEFAULTS.get(kind)
    if base is None and (margin is None or detectable is None or decisive_gap is None):
        raise ValueError(f"no defaults for kind {kind!r}: give margin, detectable and decisive_gap")
    margin = base.margin if margin is None and base else margin
    detectable = base.detectable if detectable is None and base else detectable
    decisive_gap = base.decisive_gap if decisive_gap is None and base else decisive_gap
    times_stable = base.times_stable if times_stable is None and base else times_stable
    relative = times_stable if times_stable is not None and times_stable > 1 else None
    assert margin is not None and detectable is not None and decisive_gap is not None
    if not 0 <= margin < detectable < 1:
        raise ValueError("need 0 <= margin < detectable < 1")
    rate_c = bad_c / n_c if n_c else 0.0
    rate_s = bad_s / n_s if n_s else 0.0
    threshold = math.log(1.0 / alpha)
    log_e, log_wealth, failing = _fail_test(bad_c, n_c, bad_s, n_s, margin, threshold, plan, priors or (prior, prior))
    lower, upper = difference_interval(bad_c, n_c, bad_s, n_s, alpha, prior)
    needed: int | None = None
    if failing:
        verdict: Verdict = "fail"
        decisive = log_e >= threshold + math.log(DECISIVE_FACTOR) or rate_c - rate_s >= decisive_gap
    elif n_c > 0 and n_s > 0 and _floor_reached(bad_c, n_c, bad_s, n_s, detectable, relative, upper, threshold, prior):
        verdict, decisive = "pass", False
    else:
        verdict, decisive = "insufficient", False
        if relative is None:
            needed = required_requests(bad_c, n_c, bad_s, n_s, detectable, alpha, prior)
        else:
            needed = floor_requests(bad_c, n_c, bad_s, n_s, detectable, relative, alpha, prior)
    return Evidence(
        kind=kind,
        bad_c=bad_c,
        n_c=n_c,
        bad_s=bad_s,
        n_s=n_s,
        rate_c=rate_c,
        rate_s=rate_s,
        estimate=rate_c - rate_s,
        lower=lower,
        upper=upper,
        margin=margin,
        detectable=detectable,
        alpha=alpha,
        log_e=log_e,
        verdict=verdict,
        decisive=decisive,
        needed_n_c=needed,
        reference=reference,
        times_stable=relative,
        log_wealth=log_wealth,
        fail_at=plan.threshold if plan is not None else None,
    )


def _fail_test(
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    margin: float,
    threshold: float,
    plan: Spending | None,
    priors: tuple[BetaMixture, BetaMixture],
) -> tuple[float, float | None, bool]:
    """The step's log E, the release's log W (with a plan) and whether the comparison fails: E
    against this step's threshold alone, or W against the comparison's over the release."""
    log_e = log_e_value(bad_c, n_c, bad_s, n_s, margin, priors[0], priors[1])
    if plan is None:
        return log_e, None, log_e >= threshold
    log_wealth = plan.log_wealth(log_e)
    return log_e, log_wealth, log_wealth >= plan.threshold


def _floor_reached(
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    detectable: float,
    relative: float | None,
    upper: float,
    threshold: float,
    prior: BetaMixture,
) -> bool:
    """The data rule out a regression that matters: more than `detectable` points (the confidence
    sequence's upper end is below it), or, relative to stable, the floor of app/core/judge/floor.py."""
    if relative is None:
        return upper < detectable
    return log_e_against_floor(bad_c, n_c, bad_s, n_s, detectable, relative, prior) >= threshold


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------


def _pct(rate: float) -> str:
    if 0 < rate < 0.001:
        return f"{100 * rate:.2f}%"
    return f"{100 * rate:.1f}%"


def _count(n: float) -> str:
    return f"{round(n):,}"


def _num(points: float) -> str:
    text = f"{points:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _points(rate: float) -> str:
    pts = 100 * rate
    return f"{_num(pts)} point" + ("" if abs(pts - 1) < 1e-9 else "s")


def _signed_points(rate: float) -> str:
    pts = round(100 * rate, 1)
    if pts == 0:
        return "0"
    return f"{pts:+.1f}".replace("-", "\u2212")


def _evidence(e: float) -> str:
    """The always-valid p-value 1/E, as a chance: "1/66,425"; "none" when E < 1 (the data fit H0)."""
    if e >= 1e6:
        return "< 1/1,000,000"
    if e < 1:
        return "none"
    return f"1/{_count(e)}"
