"""The oracle for a slower candidate: Wald's SPRT that knows both latency distributions.

It reads each candidate response's histogram bucket as it arrives and adds log(p_c / p_s) of that
bucket (p_c, p_s: the two versions' true bucket shares); it fails the candidate once the sum reaches
log(1 / alpha). No valid test beats it on average at the same alpha (Wald-Wolfowitz); Sluice's
detection times are shown next to its in docs/judging.md. The candidate's traffic follows the
policy's steps (its share of RATE requests per second), second by second, from its first request.
"""

from __future__ import annotations

import math

import numpy as np

from tests.support.simulate import RATE, bucket_shares, scaled_shares


def oracle_times(
    scale: float,
    slow: float,
    steps: list[tuple[float, float]],
    rng: np.random.Generator,
    *,
    alpha: float = 0.01,
    releases: int = 400,
    versus: float = 1.0,
) -> list[float]:
    """Seconds to detection of a candidate `scale` times slower than a version with `slow` over
    500 ms, over `releases` simulated releases; `steps` are (share of traffic, seconds). `versus`:
    the null the oracle tests against is a version this many times slower (1: identical)."""
    p_s, p_c = scaled_shares(slow, versus) if versus != 1.0 else bucket_shares(slow), scaled_shares(slow, scale)
    llr = np.log(np.maximum(p_c, 1e-300) / np.maximum(p_s, 1e-300))
    threshold = math.log(1 / alpha)
    times = []
    for _ in range(releases):
        total, t = 0.0, 0.0
        for share, seconds in steps:
            for _ in range(int(seconds)):
                t += 1
                counts = rng.multinomial(rng.poisson(RATE * share), p_c)
                total += float(counts @ llr)
                if total >= threshold:
                    break
            if total >= threshold:
                break
        times.append(t if total >= threshold else math.inf)
    return times
