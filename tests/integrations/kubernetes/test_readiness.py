"""Readiness lost during a release counts as a restart (issue #10: "for Kubernetes, add readiness
flaps to restarts"): a crash-looping pod whose container restarts are hidden (a readiness probe
that fails, a process that recovers without exiting) is still seen."""

from __future__ import annotations

from app.core.models import Observations, Release
from integrations.kubernetes.health import READY_GRACE, readiness_flaps

T0 = 1_700_000_000.0


def stamp(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pod(name: str, created: float, ready: bool | None, changed: float | None = None) -> dict:
    at = stamp(changed if changed is not None else created)
    status = "True" if ready else "False"
    conditions = [] if ready is None else [{"type": "Ready", "status": status, "lastTransitionTime": at}]
    return {"metadata": {"name": name, "creationTimestamp": stamp(created)}, "status": {"conditions": conditions}}


def release() -> Release:
    return Release(
        id="r-1", application="shop", namespace="prod", service="web", source_version="1.0.0",
        target_version="1.1.0", policy="canary", created_at=T0 + 0.5, updated_at=T0,
    )  # fmt: skip


def test_pods_that_existed_before_the_release_and_changed_readiness_since_count():
    pods = [
        pod("steady", T0 - 60, True, T0 - 50),  # ready since before the release: not a flap
        pod("lost", T0 - 60, False, T0 + 20),  # unready now, since during the release
        pod("back", T0 - 60, True, T0 + 40),  # unready during the release, ready again
        pod("same-second", T0, True, T0 - 0),  # created in the release's second, ready then
    ]
    assert readiness_flaps(release(), pods, T0 + 60) == ["lost", "back"]


def test_a_new_pod_counts_once_it_stays_unready_past_the_grace():
    new = pod("new", T0 + 10, False, T0 + 10)
    assert readiness_flaps(release(), [new], T0 + 10 + READY_GRACE - 1) == []
    assert readiness_flaps(release(), [new], T0 + 10 + READY_GRACE + 1) == ["new"]
    assert readiness_flaps(release(), [pod("no-conditions", T0 - 60, None)], T0 + 60) == []


def test_flaps_reach_the_restart_check_through_observations():
    # what observe_cluster adds: restarts + flaps against max_restarts (here 2 + 1 > 2 fails)
    from app.core.config.policy import PolicyConfig
    from app.core.decide import decide

    policy = PolicyConfig.model_validate({"name": "canary", "steps": [{"weight": 10}, {"weight": 100}]})
    running = release().model_copy(update={"state": "running", "step": 0, "step_started_at": T0})
    flaps = readiness_flaps(release(), [pod("lost", T0 - 60, False, T0 + 20)], T0 + 60)
    obs = Observations(at=T0 + 60, restarts=2 + len(flaps), max_restarts=2)
    d = decide(running, policy, obs, T0 + 60)
    assert d.kind == "fail" and "'restarts'" in d.reason
