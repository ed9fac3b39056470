"""How a comparison spends its α over the release's steps, and what it knows before a step starts.

Pure Python (``math`` only), no I/O. See docs/judging.md ("Power").

α spent by a plan, evidence carried across steps
------------------------------------------------
Each step's counts are their own test (app/core/judge/mixture.py): an e-process E_k that starts at 1
when step k's weights are confirmed. Splitting α by Bonferroni over the steps makes every step prove
its case alone against 1/(α/steps). Instead, each comparison runs one test over the whole release,

    W_t = sum over j <= k of  w_j * E_j * E_{j+1} * ... * E_k(t)   +   sum over j > k of w_j

(during step k, E_i taken at the end of its step for i < k): a mix, with weights w_j, of "the
product of the steps' evidence since step j". Each term is a product of e-processes over disjoint
spans, each starting at 1 given what came before: a test supermartingale (Ville), and so is their
mix, W_0 = 1. So P(W ever reaches 1/α) <= α: the comparison fails when it does, α being the
comparison's share of the release's (the README's 0.01 over the three comparisons), spent by the
weights: the first step gets w_1 of it alone, and a regression seen at 10% keeps its evidence at 50%
and 100% instead of starting again. The term that starts later forgets an earlier step's dip (a
step in which the candidate looked no worse ends with E < 1): a version that breaks only at 50%
is not held back by a good first step by more than its weight. The weights halve from step to
step: the first steps are where a bad version should be stopped, and at 100% stable's reference
is from earlier spans (drift there is the main source of false rollbacks), so it gets the least.

Priors from what came before the step
-------------------------------------
The mixture pays for not knowing the rates (about half a log of the requests each side: 2 to 3
nats of stable's, at 9x the candidate's traffic). A prior chosen before the step's data is still a
prior: the e-process stays valid whatever it is. So each side's prior puts most of its weight on the
rate seen before the step -- stable's over the 10 minutes before the release or the steps passed,
the candidate's over the steps passed -- and keeps the default mixture beside it, so that a rate
that moved costs at most log(1 / (1 - INFORMED_WEIGHT)). Stable's prior is informed only while
stable serves live traffic: at 100% its reference *is* the earlier counts, which cannot also be
its prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.core.judge.mixture import DEFAULT_PRIOR, BetaMixture

# The informed component's weight: a rate that did not move costs log(1/0.75) = 0.29 nats, one
# that moved at most log 4 = 1.4 (the default mixture's own cost then).
INFORMED_WEIGHT = 0.75
# The informed component counts at most this many bad outcomes' worth of data (a relative spread
# of about 1/sqrt(100) = 10%): rates drift between the spans, and a prior sharper than the drift
# would cost more than it saves.
INFORMED_BAD = 100.0
# ... and at least this many (a rate of 0 in 300 requests is not proof of 0).
INFORMED_MIN_BAD = 1.0


def step_weights(n_steps: int) -> list[float]:
    """w_j for j = 0..n_steps-1: halving from step to step, summing to 1."""
    raw = [0.5**j for j in range(max(1, n_steps))]
    total = sum(raw)
    return [w / total for w in raw]


@dataclass(frozen=True)
class Spending:
    """A comparison's test over the release during one step: W_t = active * E_t + idle."""

    log_active: float  # log of the weight carried into this step (w_j times the products since j)
    idle: float  # the weights of the steps not started yet
    alpha: float  # the comparison's α over the whole release

    def log_wealth(self, log_e: float) -> float:
        """log W_t, given this step's log E_t."""
        carried = self.log_active + log_e
        if self.idle <= 0:
            return carried
        return _logaddexp(carried, math.log(self.idle))

    @property
    def threshold(self) -> float:
        return math.log(1.0 / self.alpha)


def spending(carried: tuple[int, float] | None, step: int, n_steps: int, alpha: float) -> Spending:
    """The plan at `step` (0-based): `carried` is (the step it was carried into, log of the active
    weight then), from the judge state; a step with no evidence in between counts as E = 1."""
    w = step_weights(n_steps)
    step = min(step, len(w) - 1)
    if carried is None:
        active = sum(w[: step + 1])
        log_active = math.log(active)
    else:
        into, log_active = carried
        extra = sum(w[into + 1 : step + 1])
        if extra > 0:
            log_active = _logaddexp(log_active, math.log(extra))
    return Spending(log_active=log_active, idle=sum(w[step + 1 :]), alpha=alpha)


def carry(plan: Spending, log_e_end: float, step: int, n_steps: int) -> tuple[int, float] | None:
    """What the next step starts with when this one ends with log E = `log_e_end`: (next step, log of
    active * E + w_next). None after the last step."""
    w = step_weights(n_steps)
    if step + 1 >= len(w):
        return None
    return step + 1, _logaddexp(plan.log_active + log_e_end, math.log(w[step + 1]))


def informed_prior(seen: tuple[float, float] | None) -> BetaMixture:
    """The prior of one side for a step: mostly Beta around the rate `seen` (bad, requests) before
    the step, beside the default mixture; the default alone without anything seen."""
    if seen is None or seen[1] <= 0:
        return DEFAULT_PRIOR
    bad, n = seen
    bad = min(max(bad, 0.0), n)
    scale = min(1.0, INFORMED_BAD / bad) if bad > 0 else 1.0
    a = max(bad * scale, INFORMED_MIN_BAD) + 0.5
    b = (n - bad) * scale + 0.5
    rest = [(w * (1 - INFORMED_WEIGHT), x, y) for w, x, y in DEFAULT_PRIOR.components]
    return BetaMixture(((INFORMED_WEIGHT, a, b), *rest))


def candidate_prior(seen: tuple[float, float] | None, stable_seen: tuple[float, float] | None) -> BetaMixture:
    """The candidate's prior for a step: around its own rate in the steps passed; at the first step,
    half of it around the smallest regression that matters given stable's rate seen before
    (max(3x, + 1 point), as the errors' promotion floor): the mixture pays about -log(prior density)
    at the candidate's true rate, and the default's mass sits at stable-like rates (4xx at 15% against
    5% cost 1.5 nats more, which is 40 requests at 10% of 40 req/s). Without either, the default."""
    if seen is not None and seen[1] > 0:
        return informed_prior(seen)
    if stable_seen is None or stable_seen[1] <= 0:
        return DEFAULT_PRIOR
    rate = min(max(stable_seen[0], 0.0) / stable_seen[1], 1.0)
    center = min(max(REGRESSION_TIMES * rate, rate + REGRESSION_POINTS), 0.5)
    rest = [(w * (1 - REGRESSION_WEIGHT), x, y) for w, x, y in DEFAULT_PRIOR.components]
    comp = (REGRESSION_WEIGHT, center * REGRESSION_CONCENTRATION, (1 - center) * REGRESSION_CONCENTRATION)
    return BetaMixture((comp, *rest))


# The first step's regression component: Beta with this mean (relative to stable) and a + b = 20,
# wide enough to cover 2-6x stable's rate; it costs a broken (50% errors) candidate 0.7 nats.
REGRESSION_TIMES = 3.0
REGRESSION_POINTS = 0.01
REGRESSION_CONCENTRATION = 20.0
REGRESSION_WEIGHT = 0.5


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))
