"""The judge's inner solve (app/core/judge/mixture.py `_max_loglik_on_line`) written out for speed
gives what the branchy version gave, on random counts: the line maxima, the confidence sequence's
ends and the e-values, to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.core.judge import mixture


def branchy_max_loglik_on_line(sc: float, fc: float, ss: float, fs: float, d: float) -> float:
    """The version before it was written out (kept here as the reference)."""
    lo, hi = max(0.0, -d), min(1.0, 1.0 - d)

    def h(p: float) -> float:
        return (
            mixture._xlog(sc, p + d)
            + mixture._xlog(fc, 1.0 - p - d)
            + mixture._xlog(ss, p)
            + mixture._xlog(fs, 1.0 - p)
        )

    if hi - lo <= 1e-15:
        return h(lo)

    def dh(p: float) -> float:
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
        nxt = p - g / d2h(p)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - p) < 1e-15 * max(1.0, abs(p)):
            p = nxt
            break
        p = nxt
    return h(p)


def random_counts(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Both versions' bad and total counts: small and large samples, rates near 0 and near 1, zeros."""
    n_c, n_s = (float(rng.choice([0, 1, 3, 40, 900, 25_000, 2_000_000]) * rng.uniform(0.5, 1.5)) for _ in range(2))
    rates = [0.0, 0.001, 0.02, 0.3, 0.97, 1.0]
    bad_c = n_c * float(rng.choice(rates)) * (1 if rng.random() < 0.5 else rng.uniform(0.5, 1))
    bad_s = n_s * float(rng.choice(rates)) * (1 if rng.random() < 0.5 else rng.uniform(0.5, 1))
    return bad_c, n_c, bad_s, n_s


def close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def test_the_line_maxima_are_the_branchy_versions() -> None:
    rng = np.random.default_rng(2026)
    for _ in range(5_000):
        bad_c, n_c, bad_s, n_s = random_counts(rng)
        d = float(rng.choice([rng.uniform(-1, 1), 0.0, 0.01, -0.999999, 0.999999]))
        args = (bad_c, n_c - bad_c, bad_s, n_s - bad_s, d)
        assert close(mixture._max_loglik_on_line(*args), branchy_max_loglik_on_line(*args)), args


def test_intervals_and_e_values_are_the_branchy_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    cases = [random_counts(rng) for _ in range(400)]
    alphas = [float(rng.choice([0.05, 0.01, 0.001])) for _ in cases]
    margins = [float(rng.choice([0.0, 0.005, 0.02])) for _ in cases]

    def run() -> list[tuple[float, float, float]]:
        return [
            (*mixture.difference_interval(*c, alpha), mixture.log_e_value(*c, margin))
            for c, alpha, margin in zip(cases, alphas, margins, strict=True)
        ]

    fast = run()
    monkeypatch.setattr(mixture, "_max_loglik_on_line", branchy_max_loglik_on_line)
    branchy = run()
    for c, got, want in zip(cases, fast, branchy, strict=True):
        assert all(close(g, w) for g, w in zip(got, want, strict=True)), (c, got, want)
