"""The checks of a step besides the judge: the user's `query` checks against their thresholds, the
router's health checks of the candidate, and the cluster (restarts, a failed rollout).

Pure (no I/O); app.core.decide combines their results with the judge's (app/core/judge/judging.py).
"""

from __future__ import annotations

import math

from app.core.config.policy import CheckConfig
from app.core.describe import describe_threshold, format_value
from app.core.models import CheckObservation, CheckResult, Observations


def judge_query(check: CheckConfig, obs: CheckObservation | None, step: int, now: float) -> CheckResult:
    """Judge a `query` check's observation (the user's own query) against its threshold."""
    threshold = describe_threshold(check)
    base = {"name": check.name, "step": step, "at": now, "threshold": threshold}
    if obs is None:
        return CheckResult(**base, value=None, verdict="no_data", detail="the check was not measured")
    base.update(query=obs.query, stable_query=obs.stable_query, stable_value=obs.stable_value)
    value = obs.value
    if value is None or not math.isfinite(value):
        return CheckResult(**base, value=None, verdict="no_data", detail=obs.error or "no data")
    problems = []
    if check.min is not None and value < check.min:
        problems.append(f"{format_value(value)} is below the minimum {format_value(check.min)}")
    if check.max is not None and value > check.max:
        problems.append(f"{format_value(value)} is above the maximum {format_value(check.max)}")
    detail = ""
    if check.max_over_stable is not None:
        stable = obs.stable_value
        if stable is None or not math.isfinite(stable):
            # Stable had no traffic in the window (e.g. at 100% candidate): compare with 0,
            # the strict reading, rather than waving the check through.
            detail = "stable had no data in the window; compared with 0"
            stable = 0.0
        limit = stable + check.max_over_stable
        if value > limit:
            problems.append(
                f"{format_value(value)} exceeds stable's {format_value(stable)}"
                f" + {format_value(check.max_over_stable)} = {format_value(limit)}"
            )
    if problems:
        return CheckResult(**base, value=value, verdict="fail", detail="; ".join(problems))
    return CheckResult(**base, value=value, verdict="pass", detail=detail)


# Taken out of service by its health checks this many times in one step: a crash loop.
MAX_DOWN_TRANSITIONS = 2
# Failed health checks in one step (HAProxy's default `fall` is 3) while stable failed none.
FAILED_CHECKS_LIMIT = 3


def health_results(obs: Observations, step: int) -> list[CheckResult]:
    """The router's health of the candidate now, and how often it went down since the step began."""
    out = []
    if obs.candidate_healthy is not None:
        out.append(
            CheckResult(
                name="health",
                step=step,
                at=obs.at,
                value=1.0 if obs.candidate_healthy else 0.0,
                threshold="candidate up",
                verdict="pass" if obs.candidate_healthy else "fail",
                detail=obs.health_detail,
            )
        )
    router = obs.evidence.candidate.router if obs.evidence is not None else None
    stable = obs.evidence.stable.router if obs.evidence is not None else None
    if router is not None and (router.down_transitions or router.failed_checks):
        # A healthy version does not fail its health checks. Taken down twice, down again now, or
        # failing checks that stable passes over the same span: the candidate is crashing.
        stable_fails = stable.failed_checks if stable is not None else 0
        crashing = (
            router.down_transitions >= MAX_DOWN_TRANSITIONS
            or (router.down_transitions >= 1 and router.currently_down)
            or (router.failed_checks >= FAILED_CHECKS_LIMIT and stable_fails == 0)
        )
        out.append(
            CheckResult(
                name="health-flaps",
                step=step,
                at=obs.at,
                value=float(router.down_transitions),
                threshold=f"< {MAX_DOWN_TRANSITIONS} times down, < {FAILED_CHECKS_LIMIT} failed checks",
                verdict="fail" if crashing else "pass",
                decisive=crashing,
                detail=f"since the step began the router's health checks failed {router.failed_checks} time(s) "
                f"(stable: {stable_fails}) and took the candidate out of service {router.down_transitions} "
                f"time(s)" + ("; it is crashing" if crashing else ""),
            )
        )
    return out


def cluster_results(obs: Observations, step: int) -> list[CheckResult]:
    """Restarts (never decrease, so over the limit is final) and a failed rollout, from the cluster."""
    out = []
    if obs.restarts is not None and obs.max_restarts is not None:
        over = obs.restarts > obs.max_restarts
        out.append(
            CheckResult(
                name="restarts",
                step=step,
                at=obs.at,
                value=float(obs.restarts),
                threshold=f"<= {obs.max_restarts}",
                verdict="fail" if over else "pass",
                detail=(f"{obs.restarts} restarts is over the limit of {obs.max_restarts}; " if over else "")
                + obs.restarts_detail,
            )
        )
    if obs.fatal:
        out.append(
            CheckResult(
                name="rollout",
                step=step,
                at=obs.at,
                value=0.0,
                threshold="progressing",
                verdict="fail",
                detail=obs.fatal,
            )
        )
    return out
