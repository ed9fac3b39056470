"""The judge's CPU cost: one `decide()` with the three comparisons, and the confidence sequence's
ends found two ways side by side (the Illinois method Sluice uses, and the plain bisection it
replaced), on the counts a tick sees at 10 % of 40 req/s. No I/O: this is the CPU a tick spends
judging, which `benchmarks/scale.py` measures inside the whole tick."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.judge import evidence as ev
from app.core.judge import mixture
from app.core.models import EvidenceObservation, JudgeState, Observations, Release, ResponseCounts, VersionCounts

TITLE = "## 7. Judge CPU"
T0 = 1_700_000_000.0
# (name, candidate n, 5xx, 4xx, slow) against stable with 9x the requests at 0.5 % / 1 % / 2 %.
CASES = [
    ("early in a step: not enough traffic yet", 40, 0, 0, 1),
    ("a good candidate mid-step", 1200, 6, 12, 24),
    ("+3 points of errors", 1200, 42, 12, 24),
]


def _counts(n: float, errors: float, client: float, slow: float) -> VersionCounts:
    fast = n - slow
    return VersionCounts(
        metrics=ResponseCounts(
            requests=n,
            by_class={"2xx": n - errors - client, "4xx": client, "5xx": errors},
            buckets=[(0.1, fast * 0.8), (0.5, fast), (1.0, n), (math.inf, n)],
        )
    )


def _release() -> Release:
    return Release.model_validate(
        dict(
            id="r-bench", application="a", namespace="default", service="s", source_version="1", target_version="2",
            policy="p", state="running", step=0, step_started_at=T0, created_at=T0, updated_at=T0,
            desired_weights={"1": 90, "2": 10}, judge=JudgeState(first_traffic_at=T0 - 60, slow_under=0.5),
        )
    )  # fmt: skip


def _bisection(bad_c: float, n_c: float, bad_s: float, n_s: float, alpha: float) -> tuple[float, float]:
    """The previous implementation: 22 bisection steps per end (for the side-by-side ratio)."""
    fc, fs = n_c - bad_c, n_s - bad_s
    log_mix = ev.DEFAULT_PRIOR.log_marginal(bad_c, fc) + ev.DEFAULT_PRIOR.log_marginal(bad_s, fs)
    c, diff = math.log(1 / alpha), bad_c / n_c - bad_s / n_s

    def edge(inside: float, outside: float) -> float:
        if mixture._profile(bad_c, fc, bad_s, fs, outside, log_mix) < c:
            return outside
        for _ in range(22):
            mid = 0.5 * (inside + outside)
            if mixture._profile(bad_c, fc, bad_s, fs, mid, log_mix) < c:
                inside = mid
            else:
                outside = mid
        return inside

    return edge(diff, -1.0), edge(diff, 1.0)


def _cpu_ms(repeat: int, fn: Callable[..., object], *args: object) -> float:
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(repeat):
            fn(*args)
        rounds.append((time.process_time() - t) / repeat * 1000)
    return statistics.median(rounds)


def run(repeat: int = 200) -> str:
    policy = PolicyConfig.model_validate(
        dict(name="p", interval="2s", steps=[{"weight": 10, "duration": "30s"}, {"weight": 100}], checks=[])
    )
    rows = [
        "| counts | decide() CPU ms | interval: Illinois ms | interval: bisection ms | ratio | ends agree to |",
        "|---|---|---|---|---|---|",
    ]
    alpha = ev.check_alpha(0.01, n_checks=3, n_steps=2)
    for name, n, errors, client, slow in CASES:
        obs = Observations(
            at=T0 + 10,
            candidate_healthy=True,
            evidence=EvidenceObservation(
                since=T0,
                candidate=_counts(n, errors, client, slow),
                stable=_counts(9 * n, 0.045 * n, 0.09 * n, 0.18 * n),
            ),
        )
        decide_ms = _cpu_ms(repeat, decide, _release(), policy, obs, T0 + 10)
        args = (errors, n, 0.045 * n, 9 * n, alpha)
        illinois = _cpu_ms(repeat, ev.difference_interval, *args)
        bisection = _cpu_ms(repeat, _bisection, *args)
        ours, theirs = ev.difference_interval(*args), _bisection(*args)
        agree = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
        rows.append(
            f"| {name} (n={n:,} vs {9 * n:,}) | {decide_ms:.2f} | {illinois:.3f} | {bisection:.3f} "
            f"| {bisection / illinois:.1f}× | {agree:.0e} |"
        )
    return "\n".join(
        rows
        + [
            "",
            f"CPU time (time.process_time), median of 5 rounds of {repeat} calls, one process. decide() judges "
            "errors, 4xx and slow against stable (9× the requests); the interval is the errors comparison's "
            "confidence sequence (both ends). Bisection (22 steps per end) is the previous implementation, "
            "kept in benchmarks/judge.py for this ratio.",
        ]
    )
