"""Gates in the decision: pure, like app/core/decide.py (the gates' answers are observations).

A gate point is where a release would apply a step's weights ("step-1", "step-2", ...) or promote
("promotion"). When `decide` reaches one that has gates, it first asks for them (a hold with
`gates_needed`: the tick observes them and decides again, in the same tick); then every gate must
say go. A no-go fails the release with the gate's reason; a manual gate nobody approved yet holds
("waiting for approval: <name>"); an unreachable webhook holds up to its timeout or fails at once.
Timeouts count from `since` in the observation, so a replay decides the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.config.gates import ManualGate, WebhookGate
from app.core.config.policy import PolicyConfig
from app.core.models import CheckResult, Decision, GateObservation, GateWait, Observations, Release

GateConfig = WebhookGate | ManualGate
PROMOTION = "promotion"


def step_point(step_index: int) -> str:
    """The gate point before step `step_index` (0-based) is applied: "step-1" for the first."""
    return f"step-{step_index + 1}"


def gates_at(policy: PolicyConfig, point: str) -> list[GateConfig]:
    """The gates of a gate point ([] for an unknown point)."""
    if point == PROMOTION:
        return list(policy.gates_before_promotion)
    number = point.removeprefix("step-")
    if point.startswith("step-") and number.isdigit() and 1 <= int(number) <= len(policy.steps):
        return list(policy.steps[int(number) - 1].gates)
    return []


def describe_point(point: str) -> str:
    return "promotion" if point == PROMOTION else point.replace("-", " ")


def check_gates(
    release: Release,
    policy: PolicyConfig,
    point: str,
    obs: Observations,
    now: float,
    results: Sequence[CheckResult] = (),
) -> Decision | None:
    """None when every gate of `point` said go (or it has none); otherwise the decision: ask them,
    hold for them, or fail the release on a no-go or a timeout."""
    gates = gates_at(policy, point)
    if not gates or release.shadow:
        # A shadow release moves no traffic: there is nothing for a gate to allow, and a person must
        # not be asked to approve what will not happen.
        return None
    budget = release.consecutive_failures

    def hold(reason: str, **extra: object) -> Decision:
        return Decision(kind="hold", reason=reason, results=list(results), consecutive_failures=budget, **extra)

    seen = obs.gates.gates if obs.gates is not None and obs.gates.point == point else None
    if seen is None:
        names = ", ".join(g.name for g in gates)
        return hold(f"checking gates before {describe_point(point)}: {names}", gates_needed=point)

    waiting: list[Decision] = []
    for gate in gates:
        answer = seen.get(gate.name) or GateObservation(name=gate.name, kind=gate.type, status="pending")
        where = f"before {describe_point(point)}"
        if answer.status == "go":
            continue
        if answer.status == "no_go":
            return _fail(
                release, f"gate '{gate.name}' said no-go {where}: {answer.detail or 'no reason given'}", results
            )
        waited = now - answer.since if answer.since is not None else 0.0
        if isinstance(gate, WebhookGate):
            if answer.status == "unreachable":
                if gate.on_unreachable == "fail":
                    return _fail(release, f"gate '{gate.name}' is unreachable {where}: {answer.detail}", results)
                if waited >= gate.unreachable_timeout:
                    return _fail(
                        release,
                        f"gate '{gate.name}' unreachable for {waited:.0f}s {where} (unreachable_timeout): "
                        f"{answer.detail}",
                        results,
                    )
                waiting.append(hold(f"waiting for gate '{gate.name}': unreachable ({answer.detail}); retrying"))
            else:
                waiting.append(hold(f"waiting for gate '{gate.name}': {answer.detail or 'not answered yet'}"))
            continue
        if gate.timeout is not None and waited >= gate.timeout:
            return _fail(release, f"no approval for gate '{gate.name}' within {waited:.0f}s {where} (timeout)", results)
        waiting.append(hold(f"waiting for approval: {gate.name}", approval=GateWait(point=point, gate=gate.name)))
    return waiting[0] if waiting else None


def _fail(release: Release, reason: str, results: Sequence[CheckResult]) -> Decision:
    """As app.core.decide.fail_back: all traffic back on stable (spelled here: decide imports this module)."""
    return Decision(
        kind="fail",
        weights=release.stable_weights(),
        results=list(results),
        reason=reason,
        consecutive_failures=release.consecutive_failures,
    )
