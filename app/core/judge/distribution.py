"""The whole latency distribution of the candidate against stable's, on histogram bucket counts.

Pure Python (``math`` only), no I/O. app/core/judge/latency.py turns it into a comparison result;
docs/judging.md ("The whole latency distribution") explains it with its detection times.

The question
------------
"Is the candidate at most ``margin`` slower than stable, across the distribution?" -- as a
hypothesis on the two latency distributions (stochastic order with a scale margin):

    H0: for every latency t, P(candidate > t) <= P(stable > t / (1 + margin))

(a candidate whose every response is (1 + margin) times stable's is exactly on the boundary; one
that is faster anywhere is inside). A version 35% slower across the board, with the same shape,
breaks it at every t in the body of the distribution; a wider spread breaks it in the upper tail.

What the histogram gives
------------------------
Per version, cumulative counts at fixed bucket bounds (Prometheus' ``le``). At each finite bound
b the candidate's "slower than b" is a count; stable's "slower than b / (1 + margin)" lies inside a
bucket. Bounds are far apart (2-2.5x): without an assumption on the inside of a bucket a 35% shift
can be invisible (every response of both versions between 50 and 100 ms). Stable's count there is
read two ways -- evenly spread (linear, as ``histogram_quantile`` does) and smooth (a monotone cubic
through the bounds, PCHIP) -- and the reading least favourable to the verdict is kept: the larger
count when testing for a slowdown, the smaller when ruling one out. Both readings are exact at the
bounds and monotone, so for two identical versions the reference at b / (1 + margin) is never below
the candidate's own count at b: the false-alarm bound does not rest on the assumption (simulated in
tests/app/test_latency_distribution.py); only where between "a few percent" and "25%" a slower
version starts to fail does.

The test
--------
At each finite bound b_k the pair (candidate's count over b_k, stable's interpolated count over
b_k / (1 + margin)) is a two-sample comparison of shares, tested with the judge's anytime-valid
mixture e-process (app/core/judge/mixture.py: H0_k: p_c - p_s <= SLACK, 0 by default). The K
bound e-processes are averaged: the mean of e-processes is an e-process, so P(ever mean >= 1/alpha) <= alpha under
H0 (each H0_k holds under H0) -- alpha is shared over the buckets at a cost of log K, like
Bonferroni, but evidence spread over several buckets adds up. Stable's interpolated count is a
count plus a fraction of a bucket: less variable than the binomial count the likelihood assumes,
which errs on the safe side.

Promotion's floor is the mirror image: the data must rule out "``detectable`` slower or worse",

    H_bad: for every t, P(candidate > t) >= P(stable > t / (1 + detectable)) - SLACK,

by the same average over bounds of the e-processes against p_c >= p_s - SLACK. An honest version
reaches it within a few dozen requests wherever stable's latencies spread over a bucket or more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from app.core.judge.mixture import log_e_value

# (upper bound in seconds, cumulative count), ascending, +Inf last: app.core.models.ResponseCounts.buckets.
Histogram = list[tuple[float, float]]

#: "At most 10% slower across the distribution" is not a regression: a version a few percent
#: slower (machine noise, a small feature) passes, one 25% slower is rolled back (docs/judging.md).
DEFAULT_MARGIN = 0.10
#: Promotion rules out a candidate this much slower (or worse).
DEFAULT_DETECTABLE = 0.25
#: A share slack on each bound's comparison. One point halved the evidence at a few hundred
#: responses; the least-favourable reading of a bucket already spares a version 5% slower.
SLACK = 0.0
#: A failing comparison whose candidate is this much slower (twice as slow) fails at once.
DECISIVE_SHIFT = 1.0
DECISIVE_FACTOR = 1000.0
#: The quantiles whose ratio estimates "how much slower" (the reason's words, not the test).
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def clean(h: Histogram) -> Histogram:
    """Cumulative counts made non-decreasing (a counter reset inside a window can break that)."""
    out: Histogram = []
    top = 0.0
    for bound, count in h:
        top = max(top, count, 0.0)
        out.append((bound, top))
    return out


def total(h: Histogram) -> float:
    return h[-1][1] if h else 0.0


def slower_than(h: Histogram, x: float) -> float:
    """How many responses took longer than x seconds: exact at a bucket bound, linear inside a
    bucket (from 0 for the first one), and all of the +Inf bucket beyond the largest finite bound."""
    n = total(h)
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in h:
        if x <= bound:
            if not math.isfinite(bound):
                break
            width = bound - prev_bound
            frac = (x - prev_bound) / width if width > 0 else 1.0
            return max(n - (prev_count + frac * (count - prev_count)), 0.0)
        prev_bound, prev_count = bound, count
    return max(n - prev_count, 0.0)


def slower_than_smooth(h: Histogram, x: float) -> float:
    """As slower_than, but the cumulative counts read by a monotone cubic through the bounds
    (Fritsch-Carlson PCHIP): the density inside a bucket follows its neighbours' (it thins out
    towards a bound past which nothing is counted), where slower_than assumes it flat."""
    return smooth_reader(h)(x)


def smooth_reader(h: Histogram) -> Callable[[float], float]:
    """slower_than_smooth for one histogram and many points: the curve is set up once."""
    n = total(h)
    xs, ys = [0.0], [0.0]
    for bound, count in h:
        if math.isfinite(bound) and bound > xs[-1]:
            xs.append(bound)
            ys.append(count)
    widths = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    secants = [(ys[i + 1] - ys[i]) / widths[i] for i in range(len(widths))]
    slopes = [_slope(i, widths, secants) for i in range(len(xs))] if widths else []

    def read(x: float) -> float:
        if x >= xs[-1] or len(xs) < 2:
            return max(n - ys[-1], 0.0)
        i = next(i for i in range(len(widths)) if x <= xs[i + 1])
        t, w = (x - xs[i]) / widths[i], widths[i]
        cdf = (
            (2 * t**3 - 3 * t**2 + 1) * ys[i]
            + (t**3 - 2 * t**2 + t) * w * slopes[i]
            + (-2 * t**3 + 3 * t**2) * ys[i + 1]
            + (t**3 - t**2) * w * slopes[i + 1]
        )
        return min(max(n - cdf, n - ys[i + 1], 0.0), n - ys[i])

    return read


def _slope(i: int, widths: list[float], secants: list[float]) -> float:
    """PCHIP's derivative at point i: one-sided at the ends, 0 where the counts stop rising, else a
    weighted harmonic mean of the two secants (keeps the curve monotone)."""
    if i == 0:
        return secants[0]
    if i == len(secants):
        return secants[-1]
    a, b = secants[i - 1], secants[i]
    if a <= 0 or b <= 0:
        return 0.0
    w1, w2 = 2 * widths[i] + widths[i - 1], widths[i] + 2 * widths[i - 1]
    return (w1 + w2) / (w1 / a + w2 / b)


def quantile(h: Histogram, q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket; None without counts or past the last finite bound."""
    n = total(h)
    if n <= 0:
        return None
    rank = q * n
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in h:
        if count >= rank and count > prev_count:
            if not math.isfinite(bound):
                return None
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return None


def finite_bounds(h: Histogram) -> list[float]:
    return [b for b, _ in h if math.isfinite(b) and b > 0]


def _mean_log_e(log_es: list[float]) -> float:
    """log of the mean of the e-values."""
    if not log_es:
        return -math.inf
    top = max(log_es)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(x - top) for x in log_es) / len(log_es))


@dataclass(frozen=True)
class BoundCount:
    """At one bound: the candidate's count over it, stable's over the bound shrunk by the margin."""

    bound: float
    cand_over: float
    stable_over: float  # stable's (interpolated) count over bound / (1 + shift)


def pairs(cand: Histogram, stable: Histogram, shift: float, safe_for: str) -> list[BoundCount]:
    """The per-bound counts the test compares (the candidate's finite bounds). Stable's share over a
    point inside a bucket is read both ways (flat, smooth) and the reading least favourable to the
    verdict is kept: the larger share when testing for a slowdown ("fail"), the smaller when ruling
    one out ("floor")."""
    n_c, n_s = total(cand), total(stable)
    pick = max if safe_for == "fail" else min
    smooth = smooth_reader(stable)
    out = []
    for bound, count in cand:
        if not math.isfinite(bound) or bound <= 0:
            continue
        x = bound / (1 + shift)
        reference = pick(slower_than(stable, x), smooth(x))
        out.append(BoundCount(bound, max(n_c - count, 0.0), min(reference, n_s)))
    return out


def log_e_slower(cand: Histogram, stable: Histogram, margin: float = DEFAULT_MARGIN, slack: float = SLACK) -> float:
    """log E against H0 "the candidate is at most `margin` slower than stable" (module docstring)."""
    cand, stable = clean(cand), clean(stable)
    n_c, n_s = total(cand), total(stable)
    if n_c <= 0 or n_s <= 0:
        return 0.0
    return _mean_log_e(
        [log_e_value(p.cand_over, n_c, p.stable_over, n_s, slack) for p in pairs(cand, stable, margin, "fail")]
    )


def log_e_not_slower(
    cand: Histogram, stable: Histogram, detectable: float = DEFAULT_DETECTABLE, slack: float = SLACK
) -> float:
    """log E against H_bad "the candidate is `detectable` slower or worse": promotion's floor."""
    cand, stable = clean(cand), clean(stable)
    n_c, n_s = total(cand), total(stable)
    if n_c <= 0 or n_s <= 0:
        return 0.0
    # p_s - p_c <= slack is H_bad at one bound (p_c >= p_s - slack): the same test, sides swapped.
    return _mean_log_e(
        [log_e_value(p.stable_over, n_s, p.cand_over, n_c, slack) for p in pairs(cand, stable, detectable, "floor")]
    )


def slower_by(cand: Histogram, stable: Histogram) -> float | None:
    """How much slower the candidate looks: the median over QUANTILES of the ratio of its quantile
    to stable's, minus 1 (0.35: 35% slower). For the words; the test does not use it."""
    ratios = []
    for q in QUANTILES:
        a, b = quantile(clean(cand), q), quantile(clean(stable), q)
        if a is not None and b is not None and b > 0:
            ratios.append(a / b)
    if not ratios:
        return None
    ratios.sort()
    mid = len(ratios) // 2
    return (ratios[mid] if len(ratios) % 2 else 0.5 * (ratios[mid - 1] + ratios[mid])) - 1.0


@dataclass(frozen=True)
class LatencyEvidence:
    """The distribution comparison at one evaluation."""

    verdict: str  # "fail", "pass" or "insufficient"
    decisive: bool
    log_e: float  # against "at most `margin` slower"
    log_e_floor: float  # against "`detectable` slower or worse"
    shift: float | None  # estimated: 0.35 = 35% slower
    p50: tuple[float | None, float | None]  # candidate, stable (seconds)
    p95: tuple[float | None, float | None]
    n: tuple[float, float]
    margin: float
    detectable: float
    alpha: float


def judge_latency(
    cand: Histogram,
    stable: Histogram,
    *,
    alpha: float,
    margin: float = DEFAULT_MARGIN,
    detectable: float = DEFAULT_DETECTABLE,
) -> LatencyEvidence:
    """fail: evidence >= 1/alpha that the candidate is more than `margin` slower; pass: evidence
    >= 1/alpha that it is not `detectable` slower; else insufficient."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if not 0 <= margin < detectable:
        raise ValueError("need 0 <= margin < detectable")
    threshold = math.log(1 / alpha)
    log_e = log_e_slower(cand, stable, margin)
    log_floor = log_e_not_slower(cand, stable, detectable)
    shift = slower_by(cand, stable)
    if log_e >= threshold:
        verdict = "fail"
        decisive = log_e >= threshold + math.log(DECISIVE_FACTOR) or (shift is not None and shift >= DECISIVE_SHIFT)
    else:
        verdict, decisive = ("pass" if log_floor >= threshold else "insufficient"), False
    c, s = clean(cand), clean(stable)
    return LatencyEvidence(
        verdict=verdict,
        decisive=decisive,
        log_e=log_e,
        log_e_floor=log_floor,
        shift=shift,
        p50=(quantile(c, 0.5), quantile(s, 0.5)),
        p95=(quantile(c, 0.95), quantile(s, 0.95)),
        n=(total(c), total(s)),
        margin=margin,
        detectable=detectable,
        alpha=alpha,
    )


def sentence(e: LatencyEvidence, reference: str = "stable") -> str:
    """E.g. "latency: candidate 35% slower than stable across the distribution (p50 81 vs 60 ms,
    n=812 vs 7,310): more than 10% slower, evidence 1/66,425"."""
    how = "about as fast as"
    if e.shift is not None and abs(e.shift) >= 0.005:
        how = f"{abs(e.shift):.0%} {'slower' if e.shift > 0 else 'faster'} than"
    if e.verdict == "fail" and (e.shift is None or e.shift <= e.margin):
        # The body is about as fast; what fails is a part of it (a tail of slow responses).
        how = "slower in part of the distribution than"
    head = (
        f"latency: candidate {how} {reference} across the distribution "
        f"(p50 {_ms(e.p50[0])} vs {_ms(e.p50[1])} ms, p95 {_ms(e.p95[0])} vs {_ms(e.p95[1])} ms, "
        f"n={e.n[0]:,.0f} vs {e.n[1]:,.0f})"
    )
    if e.verdict == "fail":
        return f"{head}: more than {e.margin:.0%} slower, evidence {_evidence(e.log_e)}" + (
            " (decisive)" if e.decisive else ""
        )
    if e.verdict == "pass":
        return f"{head}: rules out {e.detectable:.0%} slower or worse"
    if e.log_e > 0:
        return (
            f"{head}: looks more than {e.margin:.0%} slower, not conclusive yet "
            f"(evidence {_evidence(e.log_e)}, fails at 1/{1 / e.alpha:,.0f})"
        )
    return f"{head}: not enough responses yet to rule out {e.detectable:.0%} slower"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    ms = 1000 * seconds
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def _evidence(log_e: float) -> str:
    if log_e >= math.log(1e6):
        return "< 1/1,000,000"
    return f"1/{math.exp(max(log_e, 0.0)):,.0f}"
