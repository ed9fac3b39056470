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

The construction: a two-sample mixture e-process (universal inference)
----------------------------------------------------------------------
For a fixed pair (p_c, p_s) the likelihood ratio of a Beta mixture against that pair,

    M_t(p_c, p_s) = m(S_c, F_c) * m(S_s, F_s) / (p_c^S_c (1-p_c)^F_c  p_s^S_s (1-p_s)^F_s),
    m(S, F) = integral of p^S (1-p)^F  prior(dp)  (closed form with Beta functions),

is a nonnegative martingale with mean 1 under (p_c, p_s) (Robbins' method of mixtures; for one
sample this is the Beta-binomial martingale of Howard et al. 2021). H0 is composite, so we take the
worst case over it:

    E_t = inf over {p_c - p_s <= margin} of M_t(p_c, p_s)
        = m(S_c, F_c) m(S_s, F_s) / sup_{H0} likelihood.

E_t <= M_t(true p_c, true p_s) whenever H0 is true, so by Ville's inequality
P(exists t: E_t >= 1/alpha) <= alpha: E_t is an e-process and ``min(1, 1/E_t)`` an always-valid
p-value (Wasserman, Ramdas & Balakrishnan 2020, "universal inference"; for multinomial counts the same
mixture idea is Lindon & Malek 2022). Checking only at evaluation times, on batched counts, is a
subsequence of the per-request process, so it stays valid; so does stopping at any time.

Compared with the "two confidence sequences" construction (fail when LCB(p_c) - UCB(p_s) > margin,
each at alpha/2), the joint e-process pools the evidence of both samples in one likelihood ratio and
needs 1/alpha rather than 2/alpha from each side: it fails earlier for the same guarantee.

The sup of the likelihood over H0 is explicit: if the observed difference is within the margin, the
unconstrained maximum (the observed rates) is in H0 and E_t <= 1 (no evidence); otherwise the maximum
lies on the boundary p_c = p_s + margin, where the log-likelihood is concave in p_s, so it is found by
a safeguarded Newton iteration.

Inverting the same martingale gives a (1 - alpha) confidence sequence for the difference
d = p_c - p_s: {d : g(d) < log(1/alpha)} with g(d) = log m_c + log m_s - max over p_c - p_s = d of
the log-likelihood. g is convex (partial minimisation of a jointly convex function over a line), so
the set is an interval, found by bisection; the test fails exactly when its lower end exceeds the
margin.

The prior (why a mixture)
-------------------------
Error rates sit near 0-5%, but a broken candidate answers 50-100% errors. One Beta prior cannot be
good at both: the mixture pays -log(prior density) near the true rate. ``DEFAULT_PRIOR`` is an equal
mix of a rare-event component Beta(0.5, 24.5) (mean 2%, mass down to 0) and the uniform Beta(1, 1).
Mixing costs at most log 2 against either component alone, and the detection-time simulation in
tests/app/test_evidence.py shows that it detects +2 points of errors faster than the uniform prior
alone while failing a 50%-errors candidate on the first few requests (numbers in docs/judging.md).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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
    "log_e_value",
    "required_requests",
]


# --------------------------------------------------------------------------------------------
# Prior and defaults
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BetaMixture:
    """A finite mixture of Beta(a, b) priors: ``components`` is ((weight, a, b), ...); weights sum to 1."""

    components: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a prior needs at least one component")
        if any(w <= 0 or a <= 0 or b <= 0 for w, a, b in self.components):
            raise ValueError("weights and Beta parameters must be positive")
        if abs(sum(w for w, _, _ in self.components) - 1.0) > 1e-9:
            raise ValueError("mixture weights must sum to 1")

    def log_marginal(self, bad: float, good: float) -> float:
        """log of the integral of p^bad (1-p)^good over the prior (Beta-binomial, without the binomial coefficient)."""
        terms = [math.log(w) + _lbeta(a + bad, b + good) - _lbeta(a, b) for w, a, b in self.components]
        return _logsumexp(terms)


#: Half rare-event Beta(0.5, 24.5) (mean 2%), half uniform Beta(1, 1). See the module docstring.
DEFAULT_PRIOR = BetaMixture(((0.5, 0.5, 24.5), (0.5, 1.0, 1.0)))

#: Probability that a release of identical versions is rolled back, at most (split by check_alpha).
DEFAULT_RELEASE_ALPHA = 0.01


@dataclass(frozen=True)
class CheckDefaults:
    """Per kind of bad outcome: the practical margin, the evidence floor and the decisive gap (all as rates)."""

    margin: float  # H0: p_c - p_s <= margin. Worse than stable by more than this is a regression.
    detectable: float  # pass only once the data exclude a regression of this size (the evidence floor)
    decisive_gap: float  # a failing check whose observed difference is at least this fails at once


#: Chosen with the simulations in tests/app/test_evidence.py; the reasoning is in docs/judging.md.
DEFAULTS: dict[str, CheckDefaults] = {
    # 5xx + proxy-side errors (connection errors, resets, timeouts at the proxy). A 1-point margin
    # detects +2 points in only 10-16% of simulated 5-minute releases; 0.25 point in 86% (docs/judging.md).
    "errors": CheckDefaults(margin=0.0025, detectable=0.05, decisive_gap=0.20),
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
# Numerics
# --------------------------------------------------------------------------------------------


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _xlog(k: float, x: float) -> float:
    """k * log(x) with 0 * log(0) = 0."""
    if k == 0:
        return 0.0
    if x <= 0:
        return -math.inf
    return k * math.log(x)


def _max_loglik_on_line(sc: float, fc: float, ss: float, fs: float, d: float) -> float:
    """max over p_c - p_s = d (both in [0, 1]) of the two-sample Bernoulli log-likelihood.

    With p = p_s the log-likelihood h(p) = sc log(p+d) + fc log(1-p-d) + ss log p + fs log(1-p) is
    concave on [max(0, -d), min(1, 1-d)]; its maximiser is an end point or the root of h'.
    """
    lo, hi = max(0.0, -d), min(1.0, 1.0 - d)

    def h(p: float) -> float:
        return _xlog(sc, p + d) + _xlog(fc, 1.0 - p - d) + _xlog(ss, p) + _xlog(fs, 1.0 - p)

    if hi - lo <= 1e-15:
        return h(lo)

    def dh(p: float) -> float:
        # Terms with a zero count vanish; a positive count over a zero distance is infinite.
        total = 0.0
        for k, x, sign in ((sc, p + d, 1.0), (fc, 1.0 - p - d, -1.0), (ss, p, 1.0), (fs, 1.0 - p, -1.0)):
            if k:
                total += sign * k / x if x > 0 else sign * math.inf
        return total

    if dh(lo) <= 0:
        return h(lo)
    if dh(hi) >= 0:
        return h(hi)

    def d2h(p: float) -> float:
        return -(
            (sc / (p + d) ** 2 if sc else 0.0)
            + (fc / (1.0 - p - d) ** 2 if fc else 0.0)
            + (ss / p**2 if ss else 0.0)
            + (fs / (1.0 - p) ** 2 if fs else 0.0)
        )

    # Start from the pooled estimate of p_s under the shift, kept inside the bracket.
    n = sc + fc + ss + fs
    p = (sc + ss - d * (sc + fc)) / n if n else 0.5 * (lo + hi)
    if not lo < p < hi:
        p = 0.5 * (lo + hi)
    for _ in range(100):
        g = dh(p)
        if g > 0:
            lo = p
        else:
            hi = p
        if g == 0 or hi - lo < 1e-14:
            break
        step = g / d2h(p)
        nxt = p - step
        if not lo < nxt < hi:  # Newton left the bracket: bisect instead.
            nxt = 0.5 * (lo + hi)
        if abs(nxt - p) < 1e-15 * max(1.0, abs(p)):
            p = nxt
            break
        p = nxt
    return h(p)


def _profile(sc: float, fc: float, ss: float, fs: float, d: float, log_mix: float) -> float:
    """g(d) = log m_c + log m_s - max over p_c - p_s = d of the log-likelihood (convex in d)."""
    return log_mix - _max_loglik_on_line(sc, fc, ss, fs, d)


def _check_counts(bad_c: float, n_c: float, bad_s: float, n_s: float) -> None:
    if not (0 <= bad_c <= n_c and 0 <= bad_s <= n_s):
        raise ValueError(f"counts must satisfy 0 <= bad <= n (got {bad_c}/{n_c} and {bad_s}/{n_s})")


def log_e_value(
    bad_c: float, n_c: float, bad_s: float, n_s: float, margin: float, prior: BetaMixture = DEFAULT_PRIOR
) -> float:
    """log E_t, the evidence against H0: p_c - p_s <= margin. Fail at level alpha when it is >= log(1/alpha).

    Counts may be non-integer (the caller's increase() over a window is); they enter the likelihood
    as they are.
    """
    _check_counts(bad_c, n_c, bad_s, n_s)
    if not -1 < margin < 1:
        raise ValueError("margin must be in (-1, 1)")
    fc, fs = n_c - bad_c, n_s - bad_s
    log_mix = prior.log_marginal(bad_c, fc) + prior.log_marginal(bad_s, fs)
    diff = (bad_c / n_c if n_c else 0.0) - (bad_s / n_s if n_s else 0.0)
    if n_c == 0 or n_s == 0 or diff <= margin:
        # The unconstrained maximum (the observed rates) is in H0 -- with no data on one side, H0 can
        # always explain the other -- so E <= 1: no evidence.
        rc, rs = (bad_c / n_c if n_c else 0.0), (bad_s / n_s if n_s else 0.0)
        return log_mix - (_xlog(bad_c, rc) + _xlog(fc, 1.0 - rc) + _xlog(bad_s, rs) + _xlog(fs, 1.0 - rs))
    return _profile(bad_c, fc, bad_s, fs, margin, log_mix)


def difference_interval(
    bad_c: float, n_c: float, bad_s: float, n_s: float, alpha: float, prior: BetaMixture = DEFAULT_PRIOR
) -> tuple[float, float]:
    """A (1 - alpha) confidence sequence for p_c - p_s at this time: valid simultaneously over all times."""
    _check_counts(bad_c, n_c, bad_s, n_s)
    if n_c == 0 or n_s == 0:
        return (-1.0, 1.0)
    fc, fs = n_c - bad_c, n_s - bad_s
    log_mix = prior.log_marginal(bad_c, fc) + prior.log_marginal(bad_s, fs)
    c = math.log(1.0 / alpha)
    diff = bad_c / n_c - bad_s / n_s

    def g(d: float) -> float:
        return _profile(bad_c, fc, bad_s, fs, d, log_mix)

    def edge(inside: float, outside: float) -> float:
        g_out = g(outside)
        if g_out < c:
            return outside
        return _crossing(g, c, inside, g(inside), outside, g_out)

    return edge(diff, -1.0), edge(diff, 1.0)


def _crossing(f: Callable[[float], float], c: float, a: float, fa: float, b: float, fb: float) -> float:
    """Where the convex f crosses c between a (f(a) < c) and b (f(b) >= c), to 1e-10, on the `a`
    side. The Illinois variant of false position: superlinear on a smooth convex f (about 8 to 12
    evaluations of the profile likelihood, where bisection to the same precision takes 33), and it
    keeps the bracket, so it cannot leave [a, b]. Each evaluation is a Newton solve: this is most of
    a tick's CPU (benchmarks/, tick CPU)."""
    fa, fb = fa - c, fb - c
    side = 0
    for _ in range(100):
        if abs(b - a) < 1e-10:
            break
        x = b - fb * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not min(a, b) < x < max(a, b):
            x = 0.5 * (a + b)
        fx = f(x) - c
        if fx < 0:  # x is inside the set: the new inside end
            a, fa = x, fx
            if side == -1:
                fb *= 0.5  # the outside end was kept twice: halve its weight (Illinois)
            side = -1
        else:
            b, fb = x, fx
            if side == 1:
                fa *= 0.5
            side = 1
    return a


def _excludes(bad_c: float, n_c: float, bad_s: float, n_s: float, d: float, c: float, prior: BetaMixture) -> bool:
    """True when the confidence sequence's upper end is below d (g(d) >= c and the estimate below d)."""
    if n_c == 0 or n_s == 0:
        return False
    if bad_c / n_c - bad_s / n_s >= d:
        return False
    fc, fs = n_c - bad_c, n_s - bad_s
    log_mix = prior.log_marginal(bad_c, fc) + prior.log_marginal(bad_s, fs)
    return _profile(bad_c, fc, bad_s, fs, d, log_mix) >= c


def required_requests(
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    detectable: float,
    alpha: float,
    prior: BetaMixture = DEFAULT_PRIOR,
) -> int | None:
    """About how many candidate requests the evidence floor needs, if the rates stay as observed.

    Projects both samples forward at their current ratio (stable growing with the candidate, as under
    a fixed traffic split) at the observed rates -- the candidate's taken as at least stable's, so a
    candidate without errors yet is not projected to be better than stable -- and returns the smallest
    candidate count (above the current one) at which the confidence sequence excludes a regression of
    ``detectable``. None if even 10^8 requests would not do (e.g. no reference at all).
    """
    _check_counts(bad_c, n_c, bad_s, n_s)
    if n_s == 0:
        return None
    c = math.log(1.0 / alpha)
    rate_s = bad_s / n_s
    rate_c = max(bad_c / n_c if n_c else 0.0, rate_s)
    ratio = n_s / n_c if n_c else 9.0  # no candidate traffic yet: assume a 10% step

    def ok(m: float) -> bool:
        return _excludes(rate_c * m, m, rate_s * ratio * m, ratio * m, detectable, c, prior)

    lo, hi = 1.0, 64.0
    while not ok(hi):
        lo, hi = hi, hi * 4
        if hi > 1e8:
            return None
    for _ in range(40):
        if hi - lo <= 1:
            break
        mid = math.sqrt(lo * hi) if hi > 4 * lo else 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return max(math.ceil(hi), math.floor(n_c) + 1)


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

    @property
    def e_value(self) -> float:
        return math.exp(self.log_e) if self.log_e < 700 else math.inf

    @property
    def p_value(self) -> float:
        """Always-valid p-value: min(1, 1/E)."""
        return math.exp(-self.log_e) if self.log_e > 0 else 1.0

    def sentence(self) -> str:
        """In words, e.g. "errors 3.1% vs stable 0.4% (n=812 vs 7,310): worse by more than 0.25 points, ..."."""
        head = (
            f"{self.kind} {_pct(self.rate_c)} vs {self.reference} {_pct(self.rate_s)} "
            f"(n={_count(self.n_c)} vs {_count(self.n_s)})"
        )
        if self.verdict == "fail":
            tail = f"worse by more than {_points(self.margin)}, evidence {_evidence(self.e_value)}"
            if self.decisive:
                tail += " (decisive)"
        elif self.verdict == "pass":
            tail = (
                f"no evidence of being worse (difference {_signed_points(self.lower)} "
                f"to {_signed_points(self.upper)} points)"
            )
        elif self.n_c == 0:
            tail = "no candidate traffic yet"
        elif self.n_s == 0:
            tail = f"no {self.reference} traffic to compare with"
        elif self.estimate > self.margin:
            tail = (
                f"looks worse by {_points(self.estimate)}, not conclusive yet "
                f"(evidence {_evidence(self.e_value)}, fails at 1/{_count(1 / self.alpha)})"
            )
        elif self.needed_n_c is not None:
            tail = f"not enough traffic yet: {_count(self.n_c)} of ~{_count(self.needed_n_c)} requests needed"
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
) -> Evidence:
    """Judge one check at one evaluation.

    ``alpha`` is this check's level in this step (see :func:`check_alpha`). ``margin``,
    ``detectable`` and ``decisive_gap`` default to ``DEFAULTS[kind]``. Counts are cumulative over
    the same span for both versions (or a fixed stable baseline, with ``reference`` saying so).
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    base = DEFAULTS.get(kind)
    if base is None and (margin is None or detectable is None or decisive_gap is None):
        raise ValueError(f"no defaults for kind {kind!r}: give margin, detectable and decisive_gap")
    margin = base.margin if margin is None and base else margin
    detectable = base.detectable if detectable is None and base else detectable
    decisive_gap = base.decisive_gap if decisive_gap is None and base else decisive_gap
    assert margin is not None and detectable is not None and decisive_gap is not None
    if not 0 <= margin < detectable < 1:
        raise ValueError("need 0 <= margin < detectable < 1")

    rate_c = bad_c / n_c if n_c else 0.0
    rate_s = bad_s / n_s if n_s else 0.0
    log_e = log_e_value(bad_c, n_c, bad_s, n_s, margin, prior)
    threshold = math.log(1.0 / alpha)
    lower, upper = difference_interval(bad_c, n_c, bad_s, n_s, alpha, prior)
    needed: int | None = None
    if log_e >= threshold:
        verdict: Verdict = "fail"
        decisive = log_e >= threshold + math.log(DECISIVE_FACTOR) or rate_c - rate_s >= decisive_gap
    elif upper < detectable and n_c > 0 and n_s > 0:
        verdict, decisive = "pass", False
    else:
        verdict, decisive = "insufficient", False
        needed = required_requests(bad_c, n_c, bad_s, n_s, detectable, alpha, prior)
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
    )


def log_e_over_limit(bad: float, n: float, limit: float, prior: BetaMixture = DEFAULT_PRIOR) -> float:
    """log E against H0: p <= limit, for one version alone (an absolute SLO such as "at most 5% errors").

    The same construction with one sample: the Beta-mixture marginal over the best likelihood under
    H0, which is the observed rate when it is within the limit (E <= 1) and the limit otherwise.
    """
    _check_counts(bad, n, 0, 0)
    if not 0 < limit < 1:
        raise ValueError("limit must be in (0, 1)")
    good = n - bad
    log_mix = prior.log_marginal(bad, good)
    rate = bad / n if n else 0.0
    p = rate if rate <= limit else limit
    return log_mix - (_xlog(bad, p) + _xlog(good, 1.0 - p))


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
