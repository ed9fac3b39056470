"""The yardstick for the judge's detection times: Wald's sequential probability ratio test that
knows both true rates.

The judge asks "is the candidate worse than stable by more than the margin?" without knowing either
rate. A test that knows them faces a simple question instead: are the candidate's requests drawn
with rate p0 = p_s + margin (the edge of "not worse", the hardest good candidate) or with its true
rate p1? Wald's SPRT, failing when the log-likelihood ratio

    sum over the candidate's requests of  x log(p1 / p0) + (1 - x) log((1 - p1) / (1 - p0))

first reaches log(1 / alpha), has a false-alarm rate of at most alpha (Ville) and the smallest
expected detection time of all tests at that level (Wald & Wolfowitz 1948): no valid test beats it
on average. Stable's counts tell it nothing it does not already know.

Detection times by Monte Carlo, on the candidate's traffic under the release's steps (its share of
the total rate for each step's duration, then all of it: the oracle never holds a step, so it sees
at least as much traffic as Sluice), with Poisson arrivals. Two variants:

- ``looks=None``: every request (in 0.1 s bins), the information limit;
- ``looks=10.0``: only at Sluice's evaluations (every 10 s), the limit for a test that sees the
  counts when Sluice does. A 100%-errors candidate is caught by the oracle within half a second and
  by anything that looks every 10 s at 10 s: that gap is the cadence, not the statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONTINUOUS_BIN = 0.1  # seconds: "every request" at the rates simulated (<= 20 requests per bin at 200 req/s)


def llr_steps(p0: float, p1: float) -> tuple[float, float]:
    """The log-likelihood ratio's increment for a bad and for a good request."""
    p1 = min(p1, 1.0 - 1e-12)
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


def schedule(steps: Sequence[tuple[float, float]], rate: float, dt: float, horizon: float) -> np.ndarray:
    """The candidate's expected requests in each bin of `dt` seconds up to `horizon`: each step's
    share (percent) of `rate` for its duration, then all of it (promoted)."""
    t = (np.arange(int(math.ceil(horizon / dt))) + 0.5) * dt
    share = np.zeros_like(t)
    for start, weight in _starts(steps):
        share[t >= start] = weight
    return rate * share * dt


def _starts(steps: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(start time, share) per step, then (end of the last step, 1.0)."""
    out, at = [], 0.0
    for weight, duration in steps:
        out.append((at, weight / 100.0))
        at += duration
    out.append((at, 1.0))
    return out


def detection_times(
    p0: float,
    p1: float,
    *,
    rate: float,
    steps: Sequence[tuple[float, float]],
    alpha: float,
    runs: int,
    rng: np.random.Generator,
    looks: float | None = None,
    horizon: float = 1200.0,
    skip: float = 0.0,
) -> np.ndarray:
    """Seconds until the SPRT (H0: rate p0 against H1: rate p1, on the candidate's requests) fails
    the candidate, per run; inf when not within `horizon`. `looks`: it checks only every `looks`
    seconds (as Sluice evaluates), else after every request. `skip`: the first seconds are not
    counted (latency: Sluice's warmup, when a cold candidate's slowness is forgiven)."""
    if not 0 < p0 < p1 <= 1:
        raise ValueError("need 0 < p0 < p1 <= 1")
    dt = CONTINUOUS_BIN
    means = schedule(steps, rate, dt, horizon)
    means[: int(round(skip / dt))] = 0.0
    bad_step, good_step = llr_steps(p0, p1)
    threshold = math.log(1.0 / alpha)
    # The looks: every bin, or every `looks` seconds (the bin that ends there).
    every = max(1, int(round(looks / dt))) if looks else 1
    at = np.arange(every - 1, means.size, every)
    out = np.full(runs, np.inf)
    for lo in range(0, runs, 100):
        k = min(100, runs - lo)
        n = rng.poisson(np.broadcast_to(means, (k, means.size)))
        bad = rng.binomial(n, min(p1, 1.0))
        llr = np.cumsum(bad * bad_step + (n - bad) * good_step, axis=1)[:, at]
        crossed = llr >= threshold
        first = np.argmax(crossed, axis=1)
        hit = crossed[np.arange(k), first]
        out[lo : lo + k] = np.where(hit, (at[first] + 1) * dt, np.inf)
    return out


def median(times: np.ndarray) -> float:
    """The median detection time; inf when half or more were not detected."""
    return float(np.median(times)) if times.size else math.inf
