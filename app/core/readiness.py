"""Ready before shift: the pure rules (no I/O; decide() calls them, the tick observes for them).

Sluice moves traffic to the candidate only once it can take it: on Kubernetes, ready replicas for
its share (`needed_replicas`); on HAProxy, its server UP. The tick observes this (Observations.
readiness) for the shift ahead (`next_weight`): the first step while the release is pending, the
next step while one runs. decide() then holds a `start` or `advance` with the reason instead of
shifting, and fails the release once it has waited `ready_timeout`.
"""

from __future__ import annotations

import math

from app.core.config.policy import PolicyConfig
from app.core.models import CheckResult, Decision, Observations, Release


def next_weight(policy: PolicyConfig, release: Release) -> int | None:
    """The candidate's share after the next shift (None: no shift ahead: the last step is 100%)."""
    if release.terminal or release.state == "paused":
        return None
    if release.state == "pending":
        return policy.steps[0].weight
    if release.step + 1 < len(policy.steps):
        return policy.steps[release.step + 1].weight
    return None


def needed_replicas(stable_ready: int, weight: int) -> int:
    """The candidate's replicas for `weight`% of the traffic stable's ready replicas serve now:
    proportional, rounded up, and at least 1 (a segment or mirror step with weight 0 still sends
    it requests)."""
    return max(1, math.ceil(max(0, stable_ready) * weight / 100))


def hold_until_ready(
    release: Release, policy: PolicyConfig, obs: Observations, now: float, results: list[CheckResult] | None = None
) -> Decision | None:
    """A hold (or, past `ready_timeout`, a failure) when the candidate is not ready for the shift
    decide() is about to make; None when it is, or when readiness is not observed."""
    readiness = obs.readiness
    if readiness is None or readiness.is_ready:
        return None
    version = release.target_version
    if readiness.error is not None:
        why = f"cannot tell whether {version} is ready: {readiness.error}"
    else:
        why = f"waiting for {version} to be ready: {readiness.detail or f'{readiness.ready} of {readiness.needed}'}"
    since = release.unready_since if release.unready_since is not None else now
    waited = now - since
    if waited >= policy.ready_timeout:
        return Decision(
            kind="fail",
            weights=release.stable_weights(),
            results=list(results or []),
            reason=f"{why}, still after {waited:.0f}s (ready_timeout) before {readiness.weight}% of traffic",
            consecutive_failures=release.consecutive_failures,
        )
    return Decision(
        kind="hold",
        results=list(results or []),
        unready_since=since,
        consecutive_failures=release.consecutive_failures,
        reason=why,
    )
