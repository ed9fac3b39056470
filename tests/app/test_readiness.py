"""Ready before shift, in the pure core: decide() never starts or advances to a candidate that is not
ready for the step's share, holds with the reason, and fails at ready_timeout; the replica rule."""

from __future__ import annotations

from app.core.decide import decide
from app.core.models import Observations, Readiness
from app.core.readiness import needed_replicas, next_weight
from app.release.engine import decided
from tests.app.test_decide import T0, good, policy, release


def test_needed_replicas_is_the_share_of_stables_ready_replicas_rounded_up_at_least_one():
    assert needed_replicas(3, 10) == 1
    assert needed_replicas(3, 50) == 2
    assert needed_replicas(3, 100) == 3
    assert needed_replicas(10, 25) == 3
    assert needed_replicas(20, 5) == 1
    assert needed_replicas(0, 50) == 1  # stable has no ready replica: the candidate still needs one
    assert needed_replicas(4, 0) == 1  # a segment or mirror step sends requests at weight 0


def test_next_weight_is_the_shift_ahead():
    p = policy()
    assert next_weight(p, release(state="pending", step=-1)) == 10
    assert next_weight(p, release(step=0)) == 50
    assert next_weight(p, release(step=1)) == 100
    assert next_weight(p, release(step=2)) is None  # at 100%: promotion moves no traffic
    assert next_weight(p, release(state="paused")) is None


def test_a_pending_release_holds_until_the_candidate_is_ready_then_starts():
    pending = release(state="pending", step=-1, desired_weights={})
    waiting = Readiness(weight=10, ready=0, needed=1, detail="0 of 1 replicas ready")
    d = decide(pending, policy(), Observations(at=T0, readiness=waiting), T0)
    assert d.kind == "hold" and d.weights is None
    assert d.reason == "waiting for 1.0.371 to be ready: 0 of 1 replicas ready"
    assert d.unready_since == T0
    held = decided(pending, d, T0)
    assert held.state == "pending" and held.unready_since == T0 and held.desired_weights == {}

    later = decide(held, policy(), Observations(at=T0 + 60, readiness=waiting), T0 + 60)
    assert later.kind == "hold" and later.unready_since == T0  # the wait counts from the first hold

    ready = Readiness(weight=10, ready=1, needed=1, detail="1 of 1 replicas ready")
    d = decide(held, policy(), Observations(at=T0 + 61, readiness=ready), T0 + 61)
    assert d.kind == "start" and d.weights == {"1.0.370": 90, "1.0.371": 10}
    assert decided(held, d, T0 + 61).unready_since is None


def test_a_passed_step_holds_its_weights_until_the_next_steps_replicas_are_ready():
    obs = good(T0 + 30)
    obs.readiness = Readiness(weight=50, ready=1, needed=2, detail="1 of 2 replicas ready")
    d = decide(release(), policy(), obs, T0 + 30)
    assert d.kind == "hold" and d.weights is None, d.reason
    assert d.reason == "waiting for 1.0.371 to be ready: 1 of 2 replicas ready"
    assert d.results, "the step's checks are still recorded while it waits"

    obs.readiness = Readiness(weight=50, ready=2, needed=2)
    assert decide(release(), policy(), obs, T0 + 30).kind == "advance"


def test_still_not_ready_at_ready_timeout_fails_back_to_stable_with_the_reason():
    p = policy(ready_timeout="2m")
    waiting = release(state="pending", step=-1, desired_weights={}, unready_since=T0)
    obs = Observations(at=T0 + 119, readiness=Readiness(weight=10, ready=1, needed=3, detail="1 of 3 replicas ready"))
    assert decide(waiting, p, obs, T0 + 119).kind == "hold"
    d = decide(waiting, p, obs, T0 + 120)
    assert d.kind == "fail" and d.weights == {"1.0.370": 100}
    assert d.reason.startswith(
        "waiting for 1.0.371 to be ready: 1 of 3 replicas ready, still after 120s (ready_timeout)"
    )


def test_readiness_that_cannot_be_observed_holds_too():
    obs = Observations(at=T0, readiness=Readiness(weight=10, error="Kubernetes API error 503"))
    d = decide(release(state="pending", step=-1), policy(), obs, T0)
    assert d.kind == "hold" and d.reason == "cannot tell whether 1.0.371 is ready: Kubernetes API error 503"


def test_no_readiness_observed_changes_nothing():
    assert decide(release(state="pending", step=-1), policy(), Observations(at=T0), T0).kind == "start"
    assert decide(release(), policy(), good(T0 + 30), T0 + 30).kind == "advance"
