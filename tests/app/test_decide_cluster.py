"""The pure decision with cluster observations: restarts over the limit and a failed rollout fail the
release at once, past any tolerance; within the limit they are recorded and pass."""

from __future__ import annotations

from app.config_file.loader import parse_config
from app.core.decide import decide
from app.core.models import EvidenceObservation, Observations, Release, ResponseCounts, VersionCounts

CONFIG = parse_config(
    """
applications:
  - name: shop
    router: {type: haproxy, socket: /tmp/x.sock}
    services: [{name: web, policy: lenient, stable_version: 1.0.0}]
policies:
  - name: lenient
    interval: 1s
    tolerance: 5
    steps: [{weight: 10}, {weight: 100}]
"""
)
POLICY = CONFIG.policy("lenient")


def running() -> Release:
    return Release(
        id="r-1",
        application="shop",
        namespace="default",
        service="web",
        source_version="1.0.0",
        target_version="1.1.0",
        policy="lenient",
        state="running",
        step=0,
        step_started_at=0.0,
        created_at=0.0,
        updated_at=0.0,
    )


def served(n: float) -> VersionCounts:
    return VersionCounts(metrics=ResponseCounts(requests=n, by_class={"2xx": n}))


def test_restarts_within_the_limit_pass_and_are_recorded() -> None:
    enough = EvidenceObservation(since=0.0, candidate=served(1000), stable=served(9000))
    obs = Observations(at=10, restarts=2, max_restarts=2, restarts_detail="2 pods", evidence=enough)
    d = decide(running(), POLICY, obs, 10)
    assert d.kind == "advance"
    [r] = [r for r in d.results if r.name == "restarts"]
    assert (r.value, r.threshold, r.verdict) == (2.0, "<= 2", "pass")


def test_restarts_over_the_limit_fail_at_once_despite_tolerance() -> None:
    d = decide(running(), POLICY, Observations(at=10, restarts=3, max_restarts=2), 10)
    assert d.kind == "fail" and d.weights == {"1.0.0": 100}
    assert d.reason.startswith("check 'restarts' failed: 3 restarts is over the limit of 2")


def test_progress_deadline_fails_at_once() -> None:
    obs = Observations(at=10, restarts=0, max_restarts=2, fatal="Deployment web-1-1-0: ProgressDeadlineExceeded")
    d = decide(running(), POLICY, obs, 10)
    assert d.kind == "fail" and "ProgressDeadlineExceeded" in d.reason and d.weights == {"1.0.0": 100}


def test_no_cluster_observation_changes_nothing() -> None:
    enough = EvidenceObservation(since=0.0, candidate=served(1000), stable=served(9000))
    d = decide(running(), POLICY, Observations(at=10, evidence=enough), 10)
    assert d.kind == "advance" and not any(r.name in ("restarts", "rollout") for r in d.results)
