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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.core import bake
from app.core.config.policy import PolicyConfig, StepConfig
from app.core.describe import format_value, step_share
from app.core.gate_rules import PROMOTION, check_gates, step_point
from app.core.judge.judging import Judgement, judge_step
from app.core.judge.memo import Memo, direct
from app.core.models import CheckResult, Decision, Observations, Release
from app.core.readiness import hold_until_ready
from app.core.step_checks import cluster_results, health_results, judge_query


def fail_back(
    release: Release,
    reason: str,
    *,
    results: Sequence[CheckResult] = (),
    consecutive_failures: int | None = None,
    kind: Literal["fail", "abort"] = "fail",
) -> Decision:
    """End the release with all traffic back on the stable version: the one way a release fails
    (a check, the router, the configuration) or is aborted (by hand, or superseded). A baking
    release was promoted on evidence: any of those ends its bake and leaves it stable."""
    if release.state == "baking":
        return bake.end(release, f"bake ended early: {reason}")
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


def _share(release: Release, step: StepConfig) -> str:
    """The candidate's share of traffic, for reasons: the step's weight, a segment or mirror step's
    shape, or for a shadow release (which sets no weights) the share the router really gave it."""
    if release.shadow:
        real = release.traffic_weights().get(release.target_version, 0)
        return f"{real}% of traffic on {release.target_version}, as the router has it; shadow"
    if step.segment is not None or step.mirror is not None:
        return f"{step_share(step)} on {release.target_version}"
    return f"{step.weight}% of traffic on {release.target_version}"


def _would(release: Release, text: str) -> str:
    """ "start: 10% of traffic to v2" -> "shadow: would send 10% of traffic to v2 (not moved)"."""
    return f"shadow: would send {text} (traffic not moved)" if release.shadow else text


def _failure_reason(failed: list[CheckResult], release: Release, step: StepConfig) -> str:
    first = failed[0]
    where = f"at step {release.step + 1} ({_share(release, step)})"
    if first.verdict == "no_data":
        what = f"check '{first.name}' had no data ({first.detail})"
    else:
        what = f"check '{first.name}' failed: {first.detail or first.verdict} (threshold {first.threshold})"
    # Name every other failing check: at 3 a.m. "1 more failed" sends people digging.
    others = ", ".join(f"'{r.name}' ({format_value(r.value)})" for r in failed[1:])
    more = f"; also failed: {others}" if others else ""
    return f"{what} {where}{more}"


@dataclass(frozen=True)
class _Evaluated:
    """One evaluation of the current step: what was observed, and every check's result."""

    release: Release
    policy: PolicyConfig
    obs: Observations
    now: float
    judgement: Judgement
    queries: list[CheckResult]
    health: list[CheckResult]
    cluster: list[CheckResult]

    @property
    def step_index(self) -> int:
        return self.release.step

    @property
    def step(self) -> StepConfig:
        return self.policy.steps[self.release.step]

    @property
    def results(self) -> list[CheckResult]:
        return self.cluster + self.health + self.judgement.results + self.queries

    @property
    def budget(self) -> int:
        return self.release.consecutive_failures

    @property
    def clock(self) -> float:
        # Timeouts run on the wall clock to the end of the observing: queries that took long (a
        # frozen backend) count as time waited.
        return max(self.now, self.obs.completed_at or self.now)

    def reason(self, failed: list[CheckResult]) -> str:
        return _failure_reason(failed, self.release, self.step)


def decide(release: Release, policy: PolicyConfig, obs: Observations, now: float, memo: Memo = direct) -> Decision:
    """What to do next with a release, given what was just observed: the first rule that has
    something to say, in order (fail at once, fail or count a failure, hold without data, hold for
    evidence, hold for the step's time and volume, then pause, advance or promote). `memo`: how the
    judge's statistics are called (app/core/judge/memo.py); the decision is the same either way."""
    if release.terminal or release.state == "paused":
        return Decision(
            kind="hold",
            reason=f"release is {release.state}",
            consecutive_failures=release.consecutive_failures,
        )
    if release.state == "pending":
        return _start(release, policy, obs, now)
    if release.state == "baking":
        return bake.decide_bake(release, policy, obs, now)
    seen = _evaluate(release, policy, obs, now, memo)
    for rule in (_fail_at_once, _fail_or_count, _hold_without_data, _hold_for_evidence, _hold_for_the_step):
        decision = rule(seen)
        if decision is not None:
            return decision
    return _step_passed(seen)


def _start(release: Release, policy: PolicyConfig, obs: Observations, now: float) -> Decision:
    """A pending release: its gates, then the candidate's readiness, then the first step's weights."""
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
        reason="start: " + _would(release, _sends(policy.steps[0], release)),
    )


def _sends(step: StepConfig, release: Release) -> str:
    """ "10% of traffic to v2", or a segment or mirror step by its shape (its weight is often 0%)."""
    if step.segment is None and step.mirror is None:
        return f"{step.weight}% of traffic to {release.target_version}"
    return f"{step_share(step)} to {release.target_version}"


def _evaluate(release: Release, policy: PolicyConfig, obs: Observations, now: float, memo: Memo) -> _Evaluated:
    """Every check of the current step: the user's queries, the judge, health and the cluster."""
    step_index = release.step
    by_name = {o.name: o for o in obs.checks}
    # `query` checks are the user's own PromQL: judged on their value against their threshold.
    queries = [judge_query(c, by_name.get(c.name), step_index, now) for c in policy.checks if c.type == "query"]
    judgement = judge_step(policy, release, obs.evidence, step_index, now, memo)
    # A guard the counts cannot measure (no latency histogram): judged on the provider's own value.
    fallback = {r.name for r in judgement.results if (r.evidence or {}).get("fallback")}
    queries += [judge_query(c, by_name.get(c.name), step_index, now) for c in policy.checks if c.name in fallback]
    judgement.results[:] = [r for r in judgement.results if r.name not in fallback]
    return _Evaluated(
        release,
        policy,
        obs,
        now,
        judgement,
        queries,
        health_results(obs, step_index),
        cluster_results(obs, step_index),
    )


def _fail_at_once(seen: _Evaluated) -> Decision | None:
    # At once: restarts only grow and a failed rollout does not recover by itself; a comparison or
    # guard fails only on anytime-valid evidence (no tolerance needed: its counts accumulate over
    # the step, so one short blip counts once); a candidate taken out of service again and again
    # by its health checks is crash-looping.
    health = seen.health
    final = [
        r
        for r in seen.cluster + seen.judgement.results + health
        if r.verdict == "fail" and (r.decisive or r not in health)
    ]
    if not final:
        return None
    return fail_back(seen.release, seen.reason(final), results=seen.results, consecutive_failures=seen.budget + 1)


def _no_data(seen: _Evaluated) -> list[CheckResult]:
    return [r for r in seen.results if r.verdict == "no_data" and not (r.evidence or {}).get("unavailable")]


def _fail_or_count(seen: _Evaluated) -> Decision | None:
    """Failed health checks and queries (and no data under `on_no_data: fail`) use up the tolerance."""
    failed = [r for r in seen.health + seen.queries if r.verdict == "fail"]
    if seen.policy.on_no_data == "fail":
        failed += _no_data(seen)
    if not failed:
        return None
    # A failure budget over the step: a pass does not reset it, so a check that fails every
    # other evaluation (a crash loop seen between restarts) still uses it up.
    count = seen.budget + 1
    if count > seen.policy.tolerance:
        return fail_back(seen.release, seen.reason(failed), results=seen.results, consecutive_failures=count)
    return Decision(
        kind="hold",
        results=seen.results,
        consecutive_failures=count,
        reason=f"failed evaluation {count} of {seen.policy.tolerance} tolerated in this step: " + seen.reason(failed),
    )


def _hold_without_data(seen: _Evaluated) -> Decision | None:
    """No data under `on_no_data: hold`, or no data at all: hold, until `no_data_timeout`."""
    no_data = _no_data(seen)
    # `pass` passes a check without data, never a step on which no check had any (Prometheus down
    # and no router counts): that step holds as under `hold`.
    nothing_seen = not any(r.verdict in ("pass", "fail", "insufficient") for r in seen.judgement.results + seen.queries)
    if not no_data or not (seen.policy.on_no_data == "hold" or nothing_seen):
        return None
    # The no-data clock starts when the first observation without data began; a gap with no tick
    # at all before it (Sluice down) is not counted against the candidate.
    release, clock = seen.release, seen.clock
    since = release.no_data_since if release.no_data_since is not None else seen.obs.at
    if seen.policy.no_data_timeout is not None and clock - since >= seen.policy.no_data_timeout:
        return fail_back(
            release,
            seen.reason(no_data) + f"; no data for {clock - since:.0f}s (no_data_timeout)",
            results=seen.results,
        )
    return Decision(
        kind="hold",
        results=seen.results,
        no_data_since=since,
        consecutive_failures=seen.budget,
        reason="holding: " + ", ".join(f"'{r.name}' has no data" for r in no_data),
    )


def _hold_for_evidence(seen: _Evaluated) -> Decision | None:
    """Too little evidence yet: hold, until `judge.evidence_timeout`."""
    judgement, release = seen.judgement, seen.release
    if not judgement.waiting:
        return None
    waited = seen.clock - judgement.since
    if waited >= seen.policy.evidence_timeout(seen.step):
        return fail_back(
            release,
            f"not enough evidence to judge {release.target_version} after {waited:.0f}s at step "
            f"{seen.step_index + 1} ({_share(release, seen.step)}; judge.evidence_timeout): "
            + "; ".join(judgement.waiting),
            results=seen.results,
        )
    return Decision(
        kind="hold",
        results=seen.results,
        consecutive_failures=seen.budget,
        reason="waiting for evidence: " + "; ".join(judgement.waiting),
    )


def _hold_for_the_step(seen: _Evaluated) -> Decision | None:
    """The step's duration and request volume are both owed before it ends."""
    step, obs, now = seen.step, seen.obs, seen.now
    started = seen.release.step_started_at if seen.release.step_started_at is not None else now
    waiting = []
    if step.duration is not None and now - started < step.duration:
        waiting.append(f"{step.duration - (now - started):.0f}s left")
    if step.requests is not None and (obs.step_requests is None or obs.step_requests < step.requests):
        seen_requests = 0 if obs.step_requests is None else int(obs.step_requests)
        waiting.append(f"{seen_requests} of {step.requests} requests")
    if not waiting:
        return None
    return Decision(
        kind="hold",
        results=seen.results,
        consecutive_failures=seen.budget,
        reason="step in progress: " + ", ".join(waiting),
    )


def _step_passed(seen: _Evaluated) -> Decision:
    """The step passed: pause if asked, then the next point's gates, then advance or promote."""
    release, policy, obs, now, results = seen.release, seen.policy, seen.obs, seen.now, seen.results
    step_index = seen.step_index
    if seen.step.pause and release.resumed_step != step_index:
        return Decision(
            kind="pause",
            results=results,
            consecutive_failures=seen.budget,
            reason=f"step {step_index + 1} passed; paused until resumed or promoted",
        )
    passed_state = seen.judgement.state.model_copy(update={"router_mark": None})
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
            bake_until=bake.bake_until(release, policy, now),
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
        reason=f"step {step_index + 1} passed; " + _would(release, _sends(policy.steps[step_index + 1], release)),
    )
