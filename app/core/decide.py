"""The release decision: a pure function of (release, policy, observations, now).

No I/O here. The tick (workers/tick.py) loads, observes, calls `decide`, then acts and
records. Everything Sluice promises about a release is a property of this module and is
tested without Redis or HTTP (tests/app/test_decide.py):

- never promote while a check of the current step fails, or has no data under
  `on_no_data: fail` (or `hold`);
- weights always sum to 100 and take only the policy's step weights or 100% stable;
- a failed release always ends on 100% stable;
- a step ends only after its duration and its request volume are both reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from app.core.config.policy import CheckConfig, PolicyConfig
from app.core.describe import describe_threshold, format_value
from app.core.gate_rules import PROMOTION, check_gates, step_point
from app.core.judge.judging import judge_step
from app.core.models import CheckObservation, CheckResult, Decision, Observations, Release
from app.core.readiness import hold_until_ready


def judge(check: CheckConfig, obs: CheckObservation | None, step: int, now: float) -> CheckResult:
    """Judge one check's observation against its threshold."""
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


def fail_back(
    release: Release,
    reason: str,
    *,
    results: Sequence[CheckResult] = (),
    consecutive_failures: int | None = None,
    kind: Literal["fail", "abort"] = "fail",
) -> Decision:
    """End the release with all traffic back on the stable version: the one way a release fails
    (a check, the router, the configuration) or is aborted (by hand, or superseded)."""
    return Decision(
        kind=kind,
        weights=release.stable_weights(),
        results=list(results),
        reason=reason,
        consecutive_failures=release.consecutive_failures if consecutive_failures is None else consecutive_failures,
    )


def decide_rollback(release: Release) -> Decision:
    """A rollback release (app/release/rollback.py) has one step: all traffic on the previous version, with
    no judging wait (that version was stable until the promotion being undone). Once its weights
    are confirmed, it is done."""
    return Decision(
        kind="promote",
        weights=release.weights_for(100),
        consecutive_failures=release.consecutive_failures,
        reason=release.reason or f"rolled back: {release.target_version} is stable again",
    )


# Taken out of service by its health checks this many times in one step: a crash loop.
MAX_DOWN_TRANSITIONS = 2
# Failed health checks in one step (HAProxy's default `fall` is 3) while stable failed none.
FAILED_CHECKS_LIMIT = 3


def _health_results(obs: Observations, step: int) -> list[CheckResult]:
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


def _cluster_results(obs: Observations, step: int) -> list[CheckResult]:
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


def _share(release: Release, weight: int) -> str:
    """The candidate's share of traffic, for reasons: the step's weight, or for a shadow release
    (which sets no weights) the share the router really gave it."""
    if release.shadow:
        real = release.traffic_weights().get(release.target_version, 0)
        return f"{real}% of traffic on {release.target_version}, as the router has it; shadow"
    return f"{weight}% of traffic on {release.target_version}"


def _would(release: Release, text: str) -> str:
    """ "start: 10% of traffic to v2" -> "shadow: would send 10% of traffic to v2 (not moved)"."""
    return f"shadow: would send {text} (traffic not moved)" if release.shadow else text


def _failure_reason(failed: list[CheckResult], release: Release, weight: int) -> str:
    first = failed[0]
    where = f"at step {release.step + 1} ({_share(release, weight)})"
    if first.verdict == "no_data":
        what = f"check '{first.name}' had no data ({first.detail})"
    else:
        what = f"check '{first.name}' failed: {first.detail or first.verdict} (threshold {first.threshold})"
    # Name every other failing check: at 3 a.m. "1 more failed" sends people digging.
    others = ", ".join(f"'{r.name}' ({format_value(r.value)})" for r in failed[1:])
    more = f"; also failed: {others}" if others else ""
    return f"{what} {where}{more}"


def decide(release: Release, policy: PolicyConfig, obs: Observations, now: float) -> Decision:
    """What to do next with a release, given what was just observed."""
    if release.terminal or release.state == "paused":
        return Decision(
            kind="hold",
            reason=f"release is {release.state}",
            consecutive_failures=release.consecutive_failures,
        )
    if release.state == "pending":
        gated = check_gates(release, policy, step_point(0), obs, now)
        if gated is not None:
            return gated
        not_ready = hold_until_ready(release, policy, obs, now)
        if not_ready is not None:  # never shift to a candidate that cannot take it
            return not_ready
        first = policy.steps[0].weight
        return Decision(
            kind="start",
            step=0,
            weights=release.weights_for(first),
            judge=release.judge.model_copy(update={"first_traffic_at": now}),
            reason="start: " + _would(release, f"{first}% of traffic to {release.target_version}"),
        )

    step_index = release.step
    step = policy.steps[step_index]
    by_name = {o.name: o for o in obs.checks}
    # `query` checks are the user's own PromQL: judged on their value against their threshold.
    queries = [judge(c, by_name.get(c.name), step_index, now) for c in policy.checks if c.type == "query"]
    judgement = judge_step(policy, release, obs.evidence, step_index, now)
    # A guard the counts cannot measure (no latency histogram): judged on the provider's own value.
    fallback = {r.name for r in judgement.results if (r.evidence or {}).get("fallback")}
    queries += [judge(c, by_name.get(c.name), step_index, now) for c in policy.checks if c.name in fallback]
    judgement.results[:] = [r for r in judgement.results if r.name not in fallback]
    health = _health_results(obs, step_index)
    cluster = _cluster_results(obs, step_index)
    results = cluster + health + judgement.results + queries
    budget = release.consecutive_failures
    # At once: restarts only grow and a failed rollout does not recover by itself; a comparison or
    # guard fails only on anytime-valid evidence (no tolerance needed: its counts accumulate over
    # the step, so one short blip counts once); a candidate taken out of service again and again
    # by its health checks is crash-looping.
    final = [r for r in cluster + judgement.results + health if r.verdict == "fail" and (r.decisive or r not in health)]
    if final:
        return fail_back(
            release, _failure_reason(final, release, step.weight), results=results, consecutive_failures=budget + 1
        )

    failed = [r for r in health + queries if r.verdict == "fail"]
    no_data = [r for r in results if r.verdict == "no_data" and not (r.evidence or {}).get("unavailable")]
    if policy.on_no_data == "fail":
        failed += no_data

    if failed:
        # A failure budget over the step: a pass does not reset it, so a check that fails every
        # other evaluation (a crash loop seen between restarts) still uses it up.
        count = budget + 1
        if count > policy.tolerance:
            return fail_back(
                release, _failure_reason(failed, release, step.weight), results=results, consecutive_failures=count
            )
        return Decision(
            kind="hold",
            results=results,
            consecutive_failures=count,
            reason=f"failed evaluation {count} of {policy.tolerance} tolerated in this step: "
            + _failure_reason(failed, release, step.weight),
        )

    # `pass` passes a check without data, never a step on which no check had any (Prometheus down
    # and no router counts): that step holds as under `hold`.
    nothing_seen = not any(r.verdict in ("pass", "fail", "insufficient") for r in judgement.results + queries)
    # Timeouts run on the wall clock to the end of the observing: queries that took long (a frozen
    # backend) count as time waited. The no-data clock starts when the first observation without
    # data began; a gap with no tick at all before it (Sluice down) is not counted against the
    # candidate.
    clock = max(now, obs.completed_at or now)
    if no_data and (policy.on_no_data == "hold" or nothing_seen):
        since = release.no_data_since if release.no_data_since is not None else obs.at
        if policy.no_data_timeout is not None and clock - since >= policy.no_data_timeout:
            return fail_back(
                release,
                _failure_reason(no_data, release, step.weight)
                + f"; no data for {clock - since:.0f}s (no_data_timeout)",
                results=results,
            )
        return Decision(
            kind="hold",
            results=results,
            no_data_since=since,
            consecutive_failures=budget,
            reason="holding: " + ", ".join(f"'{r.name}' has no data" for r in no_data),
        )

    if judgement.waiting:
        waited = clock - judgement.since
        if waited >= policy.evidence_timeout(step):
            return fail_back(
                release,
                f"not enough evidence to judge {release.target_version} after {waited:.0f}s at step "
                f"{step_index + 1} ({_share(release, step.weight)}; judge.evidence_timeout): "
                + "; ".join(judgement.waiting),
                results=results,
            )
        return Decision(
            kind="hold",
            results=results,
            consecutive_failures=budget,
            reason="waiting for evidence: " + "; ".join(judgement.waiting),
        )

    started = release.step_started_at if release.step_started_at is not None else now
    waiting = []
    if step.duration is not None and now - started < step.duration:
        waiting.append(f"{step.duration - (now - started):.0f}s left")
    if step.requests is not None and (obs.step_requests is None or obs.step_requests < step.requests):
        seen = 0 if obs.step_requests is None else int(obs.step_requests)
        waiting.append(f"{seen} of {step.requests} requests")
    if waiting:
        return Decision(
            kind="hold", results=results, consecutive_failures=budget, reason="step in progress: " + ", ".join(waiting)
        )

    if step.pause and release.resumed_step != step_index:
        return Decision(
            kind="pause",
            results=results,
            consecutive_failures=budget,
            reason=f"step {step_index + 1} passed; paused until resumed or promoted",
        )
    passed_state = judgement.state.model_copy(update={"router_mark": None})
    last = step_index == len(policy.steps) - 1
    gated = check_gates(release, policy, PROMOTION if last else step_point(step_index + 1), obs, now, results)
    if gated is not None:
        return gated
    if last:
        return Decision(
            kind="promote",
            weights=release.weights_for(100),
            results=results,
            judge=passed_state,
            reason=f"every step passed; {release.target_version} "
            + ("would now be stable (shadow: nothing was changed)" if release.shadow else "is now stable"),
        )
    not_ready = hold_until_ready(release, policy, obs, now, results)
    if not_ready is not None:
        return not_ready
    nxt = policy.steps[step_index + 1].weight
    return Decision(
        kind="advance",
        step=step_index + 1,
        weights=release.weights_for(nxt),
        results=results,
        judge=passed_state,
        reason=f"step {step_index + 1} passed; " + _would(release, f"{nxt}% of traffic to {release.target_version}"),
    )
