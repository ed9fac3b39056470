"""Simulated releases through the real decision core (app.core.decide.decide), without servers.

A release of a service at `RATE` requests/s: every evaluation interval, each version receives
Poisson arrivals at its share of the traffic (the release's desired weights), and each response is
a 5xx, a 4xx or a 2xx, fast or slow, with the version's rates. The bad rates of both versions
wobble together every interval by a lognormal factor (load spikes, a shared dependency), so the
comparison sees what it sees in production: rates that move, for both versions at once.

The counts are what the tick would observe: per version, cumulative since the step started (the
metrics backend's status classes and latency histogram, and the router's per-server counts);
latency since the candidate's warmup ended, when that is inside the step. Each decision is applied
to the release the way app.release.engine.commit_decision does for the fields decide() reads.

Used by tests/app/test_judge_simulation.py; the figures in docs/judging.md come from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.judge.judging import latency_since, looks_broken
from app.core.judge.memo import Memo, direct
from app.core.models import (
    Decision,
    EvidenceObservation,
    Observations,
    Release,
    ResponseCounts,
    RouterCounts,
    VersionCounts,
)

T0 = 1_700_000_000.0
RATE = 40.0  # requests per second, both versions together
JITTER = 0.3  # sigma of the common per-interval lognormal wobble of the bad rates
GROSS = 0.3  # a candidate bad rate at least this high is a broken version: not wobbled

# Latency histogram (upper bounds, seconds). A fast response falls in the buckets up to 500 ms with
# FAST_SHARES, a slow one (over 500 ms) in the buckets above with SLOW_SHARES. A fifth of the fast
# responses take 250-500 ms, so stable's automatic slow bound (the smallest bound that at most 10%
# of its responses exceed) is 500 ms, and "slow" is what the scenario calls slow.
BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
FAST_SHARES = (0.3, 0.35, 0.15, 0.2)
SLOW_SHARES = (0.6, 0.3, 0.1)

_STATE_FOR_KIND = {
    "start": "running",
    "advance": "running",
    "resume": "running",
    "pause": "paused",
    "promote": "succeeded",
    "fail": "failed",
    "abort": "aborted",
}


@dataclass(frozen=True)
class Rates:
    """A version's bad rates: 5xx, 4xx, slow (over 500 ms)."""

    errors: float = 0.0
    client: float = 0.0
    slow: float = 0.0
    scale: float = 1.0  # every response this many times slower (tests/support/latency_sim.py)


@dataclass(frozen=True)
class CrashLoop:
    """The candidate crashes again and again: up for `up` seconds (uniform range; the first crash
    `first` seconds after it took traffic), then its requests are refused (HAProxy: `econ`, a 503
    to the client; the app's metrics never see them) for `refused` seconds until the health checks
    take it out of service (a down transition), then it gets no traffic for `down` seconds
    (restarting), then it is back."""

    first: tuple[float, float] = (5.0, 40.0)
    up: tuple[float, float] = (15.0, 40.0)
    refused: tuple[float, float] = (2.0, 6.0)
    down: tuple[float, float] = (5.0, 15.0)


@dataclass(frozen=True)
class Scenario:
    stable: Rates
    candidate: Rates
    crash_loop: CrashLoop | None = None


@dataclass
class Outcome:
    kind: str  # "promote" or "fail"
    at: float  # seconds since the candidate first took traffic
    step: int  # the step (0-based) the release ended in
    reason: str
    failed: list[str] = field(default_factory=list)  # names of the failing results


class _Version:
    """One version's counts since the step started (and since the latency window started)."""

    def __init__(self) -> None:
        self.status = np.zeros(3)  # 2xx, 4xx, 5xx the app answered
        self.buckets = np.zeros(len(BOUNDS))  # per bucket (not cumulative)
        self.refused = 0.0  # proxy errors: refused connections
        self.down_transitions = 0
        self.latency = np.zeros(len(BOUNDS))  # buckets since the latency window started

    def counts(self, router: bool) -> VersionCounts:
        s2, s4, s5 = (float(x) for x in self.status)
        answered = s2 + s4 + s5
        metrics = ResponseCounts(
            requests=answered,
            by_class={"2xx": s2, "4xx": s4, "5xx": s5},
            buckets=_cumulative(self.buckets),
        )
        if not router:
            return VersionCounts(metrics=metrics)
        return VersionCounts(
            metrics=metrics,
            router=RouterCounts(
                requests=answered + self.refused,
                by_class={"2xx": s2, "4xx": s4, "5xx": s5},
                proxy_errors=self.refused,
                down_transitions=self.down_transitions,
            ),
        )


def _cumulative(per_bucket: np.ndarray) -> list[tuple[float, float]]:
    return list(zip(BOUNDS, (float(x) for x in np.cumsum(per_bucket)), strict=True))


class _Crashes:
    """The candidate's crash-loop timeline: when it refuses connections, when it is out of service."""

    def __init__(self, loop: CrashLoop, rng: np.random.Generator, start: float) -> None:
        self.periods: list[tuple[float, float, float]] = []  # (crash, taken out of service, back)
        t = start + rng.uniform(*loop.first)
        while t < start + 3600:
            out = t + rng.uniform(*loop.refused)
            back = out + rng.uniform(*loop.down)
            self.periods.append((t, out, back))
            t = back + rng.uniform(*loop.up)

    def split(self, a: float, b: float) -> tuple[float, float, int]:
        """Of [a, b): seconds refusing, seconds out of service, and down transitions in it."""
        refusing = down = 0.0
        transitions = 0
        for crash, out, back in self.periods:
            if crash >= b:
                break
            refusing += max(0.0, min(b, out) - max(a, crash))
            down += max(0.0, min(b, back) - max(a, out))
            transitions += a <= out < b
        return refusing, down, transitions

    def healthy(self, t: float) -> bool:
        return not any(out <= t < back for _, out, back in self.periods)


def _wobble(rng: np.random.Generator) -> np.ndarray:
    """One common factor per kind of bad outcome, mean 1."""
    return np.exp(rng.normal(0.0, JITTER, 3) - JITTER**2 / 2)


def _bad(p: float, factor: float) -> float:
    return p if p >= GROSS else min(p * factor, 0.99)


def _serve(rng: np.random.Generator, v: _Version, rates: Rates, factor: np.ndarray, mean: float, warm: bool) -> None:
    """Poisson arrivals with mean `mean`: status, then latency, added to `v`."""
    n = rng.poisson(mean) if mean > 0 else 0
    if n == 0:
        return
    pe, p4, ps = _bad(rates.errors, factor[0]), _bad(rates.client, factor[1]), _bad(rates.slow, factor[2])
    p4 = min(p4, 1.0 - pe)
    status = rng.multinomial(n, (1.0 - pe - p4, p4, pe))
    slow = rng.binomial(n, ps)
    buckets = np.concatenate([rng.multinomial(n - slow, FAST_SHARES), rng.multinomial(slow, SLOW_SHARES)])
    if rates.scale != 1.0:
        buckets = rng.multinomial(n, scaled_shares(ps, rates.scale)).astype(float)
    v.status += status
    v.buckets += buckets
    if warm:
        v.latency += buckets


def bucket_shares(slow: float) -> np.ndarray:
    """A version's share of responses per bucket (BOUNDS), with `slow` of them over 500 ms."""
    return np.concatenate([(1 - slow) * np.array(FAST_SHARES), slow * np.array(SLOW_SHARES)])


def scaled_shares(slow: float, scale: float) -> np.ndarray:
    """The bucket shares of a version `scale` times slower than bucket_shares(slow): latencies
    spread evenly inside each bucket (the +Inf one read as 2.5-5 s), each multiplied by `scale`."""
    edges = np.array([0.0, *BOUNDS[:-1], 5.0])
    cdf_at_edges = np.concatenate([[0.0], np.cumsum(bucket_shares(slow))])
    shrunk = np.interp(np.minimum(edges[1:] / scale, 5.0), edges, cdf_at_edges)
    shrunk[-1] = 1.0
    return np.diff(np.concatenate([[0.0], shrunk]))


def apply(release: Release, decision: Decision, now: float) -> Release:
    """The fields of app.release.engine.commit_decision that decide() reads."""
    update: dict = {
        "consecutive_failures": decision.consecutive_failures,
        "no_data_since": decision.no_data_since,
        "updated_at": now,
        "seq": release.seq + 1,
    }
    if decision.judge is not None:
        update["judge"] = decision.judge.model_copy(deep=True)
    if decision.kind in _STATE_FOR_KIND:
        update["state"] = _STATE_FOR_KIND[decision.kind]
        update["reason"] = decision.reason
    if decision.kind in ("start", "advance"):
        update["step"] = decision.step if decision.step is not None else release.step
        update["step_started_at"] = now
        update["consecutive_failures"] = 0
    if decision.kind == "resume":
        update["resumed_step"] = release.step
    if decision.weights is not None and decision.weights != release.desired_weights:
        update["desired_weights"] = dict(decision.weights)
    return release.model_copy(update=update)


def new_release(policy: PolicyConfig) -> Release:
    return Release(
        id="r-sim",
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0",
        target_version="1.1",
        policy=policy.name,
        created_at=T0,
        updated_at=T0,
    )


def run_release(
    policy: PolicyConfig,
    scenario: Scenario,
    rng: np.random.Generator,
    *,
    interval: float | None = None,
    router: bool = True,
    limit: float = 3600.0,
    rate: float = RATE,
    memo: Memo = direct,
) -> Outcome:
    """Drive one release through decide() until it ends; evaluations every `interval` (default:
    the policy's), `rate` requests/s in all. `router`: the tick also reads the router's per-server
    counts (HAProxy). `memo`: how the judge's statistics are called (app/core/judge/memo.py)."""
    interval = interval or policy.interval
    before = _stable_before(rng, scenario.stable, rate, interval).counts(router)
    release = new_release(policy)
    now = T0
    release = apply(release, decide(release, policy, Observations(at=now), now), now)
    cand = release.target_version
    crashes = _Crashes(scenario.crash_loop, rng, now) if scenario.crash_loop else None
    c, s = _Version(), _Version()
    gap, window, factor = interval, -1.0, np.ones(3)
    while now - T0 < limit:
        start = now
        now += gap
        weight = release.desired_weights.get(cand, 0) / 100.0
        # The latency window: from the candidate's warmup on, when that ends inside this step.
        warm_at = latency_since(release, policy)
        assert warm_at is not None and release.step_started_at is not None
        split = warm_at > release.step_started_at
        if (start - T0) // interval != window:  # the wobble moves once an interval, however often we look
            window, factor = (start - T0) // interval, _wobble(rng)
        for a, b in _pieces(start, now, warm_at if split else None):
            warm = not split or a >= warm_at
            length = b - a
            if crashes is None:
                _serve(rng, c, scenario.candidate, factor, rate * weight * length, warm)
                _serve(rng, s, scenario.stable, factor, rate * (1 - weight) * length, warm)
                continue
            refusing, down, transitions = crashes.split(a, b)
            up = length - refusing - down
            # Out of service, the candidate's share goes to stable.
            _serve(rng, c, scenario.candidate, factor, rate * weight * up, warm)
            c.refused += rng.poisson(rate * weight * refusing) if refusing > 0 else 0
            c.down_transitions += transitions
            _serve(rng, s, scenario.stable, factor, rate * ((1 - weight) * length + weight * down), warm)
        evidence = EvidenceObservation(
            since=release.step_started_at, candidate=c.counts(router), stable=s.counts(router)
        )
        if release.step == 0:  # as app/release/observe.py reads it: the first step's prior
            evidence.stable_before = before
        if split:
            evidence.latency_since = warm_at
            if now > warm_at:
                evidence.candidate_latency = ResponseCounts(
                    requests=float(c.latency.sum()), buckets=_cumulative(c.latency)
                )
                evidence.stable_latency = ResponseCounts(
                    requests=float(s.latency.sum()), buckets=_cumulative(s.latency)
                )
        healthy = crashes.healthy(now) if crashes is not None else True
        obs = Observations(at=now, candidate_healthy=healthy, evidence=evidence)
        decision = decide(release, policy, obs, now, memo)
        release = apply(release, decision, now)
        # As app/release/engine.py's next_tick_at: half the interval while the candidate looks broken.
        gap = max(0.5, interval / 2) if decision.kind == "hold" and looks_broken(decision.results) else interval
        if decision.kind in ("promote", "fail", "abort"):
            failed = [r.name for r in decision.results if r.verdict == "fail"]
            return Outcome(decision.kind, now - T0, release.step, decision.reason, failed)
        if decision.kind == "advance":
            c, s = _Version(), _Version()
    raise AssertionError(f"release still {release.state} after {limit:.0f}s: {release.reason}")


def _stable_before(rng: np.random.Generator, rates: Rates, rate: float, interval: float) -> _Version:
    """Stable's counts over the 10 minutes before the release (all the traffic, the same wobble)."""
    v = _Version()
    for _ in range(int(600 / interval)):
        _serve(rng, v, rates, _wobble(rng), rate * interval, True)
    return v


def _pieces(a: float, b: float, cut: float | None) -> list[tuple[float, float]]:
    if cut is not None and a < cut < b:
        return [(a, cut), (cut, b)]
    return [(a, b)]
