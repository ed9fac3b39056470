"""The promotion floor relative to stable: evidence that the candidate is not worse than
max(factor x stable's rate, stable's rate + an absolute margin).

Pure Python (``math`` only), no I/O. Promotion asks the data to rule out a regression that matters
*relative to stable's own rate*: with stable at 0.3% errors, "+5 points" is meaningless, "twice as
many errors" is not. The hypothesis to reject is

    H_bad: p_c >= factor * p_s  and  p_c >= p_s + absolute,

the intersection of two half-planes: a convex set. The evidence against it is built as the
comparison's (app/core/judge/mixture.py): the two-sample Beta-mixture marginal over the largest
likelihood H_bad allows. E_t <= M_t(true p_c, true p_s) whenever H_bad is true, so by Ville's inequality
P(ever E_t >= 1/alpha | H_bad) <= alpha: the floor is anytime-valid like the test it stands beside,
and no plug-in estimate of stable's rate is needed (stable's uncertainty is in the likelihood).

The largest likelihood over H_bad: the log-likelihood is concave, so when the observed rates are
outside H_bad the maximum lies on its boundary -- the line p_c = p_s + absolute up to
p_s = absolute / (factor - 1), then the line p_c = factor * p_s -- each a one-dimensional concave
maximisation. With factor <= 1 the floor is the absolute one, p_c - p_s >= absolute.
"""

from __future__ import annotations

import math

from app.core.judge.mixture import DEFAULT_PRIOR, BetaMixture, _check_counts, _xlog, project_requests


def _max_on_segment(sc: float, fc: float, ss: float, fs: float, u: float, v: float, lo: float, hi: float) -> float:
    """max over p_s in [lo, hi] of the log-likelihood on the line p_c = u + v * p_s (concave in p_s)."""

    def h(p: float) -> float:
        q = u + v * p
        return _xlog(sc, q) + _xlog(fc, 1.0 - q) + _xlog(ss, p) + _xlog(fs, 1.0 - p)

    def dh(p: float) -> float:
        q, total = u + v * p, 0.0
        for k, x, w in ((sc, q, v), (fc, 1.0 - q, -v), (ss, p, 1.0), (fs, 1.0 - p, -1.0)):
            if k:
                total += w * k / x if x > 0 else w * math.inf
        return total

    if hi - lo <= 1e-15:
        return h(lo)
    if dh(lo) <= 0:
        return h(lo)
    if dh(hi) >= 0:
        return h(hi)
    # Bisection on the derivative: 60 halvings reach 1e-18 of a unit interval, cheaper than the
    # comparison's interval search that runs beside it.
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if dh(mid) > 0:
            lo = mid
        else:
            hi = mid
    return h(0.5 * (lo + hi))


def log_e_against_floor(
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    absolute: float,
    factor: float,
    prior: BetaMixture = DEFAULT_PRIOR,
) -> float:
    """log E against H_bad: p_c >= max(factor * p_s, p_s + absolute). Promotion's floor is reached
    when it is >= log(1/alpha)."""
    _check_counts(bad_c, n_c, bad_s, n_s)
    if not 0 < absolute < 1:
        raise ValueError("absolute must be in (0, 1)")
    fc, fs = n_c - bad_c, n_s - bad_s
    log_mix = prior.log_marginal(bad_c, fc) + prior.log_marginal(bad_s, fs)
    rc, rs = (bad_c / n_c if n_c else 0.0), (bad_s / n_s if n_s else 0.0)
    observed = _xlog(bad_c, rc) + _xlog(fc, 1.0 - rc) + _xlog(bad_s, rs) + _xlog(fs, 1.0 - rs)
    if n_c == 0 or n_s == 0 or rc >= max(factor * rs, rs + absolute):
        # H_bad can explain the data as well as anything: no evidence against it.
        return log_mix - observed
    corner = absolute / (factor - 1.0) if factor > 1 else math.inf
    best = _max_on_segment(bad_c, fc, bad_s, fs, absolute, 1.0, 0.0, min(corner, 1.0 - absolute))
    if factor > 1 and corner < 1.0 / factor:
        best = max(best, _max_on_segment(bad_c, fc, bad_s, fs, 0.0, factor, corner, 1.0 / factor))
    return log_mix - best


def floor_requests(
    bad_c: float,
    n_c: float,
    bad_s: float,
    n_s: float,
    absolute: float,
    factor: float,
    alpha: float,
    prior: BetaMixture = DEFAULT_PRIOR,
) -> int | None:
    """About how many candidate requests the floor needs if the rates stay as observed (the
    projection of app/core/judge/mixture.py's required_requests)."""
    c = math.log(1.0 / alpha)
    return project_requests(
        bad_c, n_c, bad_s, n_s, lambda bc, nc, bs, ns: log_e_against_floor(bc, nc, bs, ns, absolute, factor, prior) >= c
    )
