"""Gates in the pure decision (app/core/gate_rules.py via app/core/decide.py): the gates' answers are observations,
so every outcome here is decided without Redis or HTTP, and the same observations decide the same."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.gate_rules import PROMOTION, check_gates, gates_at, step_point
from app.core.models import GateObservation, GateObservations, Observations, Release

T0 = 1_700_000_000.0


def policy(**kw) -> PolicyConfig:
    base = dict(
        name="gated",
        steps=[
            {"weight": 10, "gates": [{"name": "freeze", "type": "webhook", "url": "http://gate.test/go"}]},
            {"weight": 100, "gates": [{"name": "qa", "type": "manual", "timeout": "1h"}]},
        ],
        gates_before_promotion=[
            {
                "name": "tracker",
                "type": "webhook",
                "url": "http://gate.test/t",
                "on_unreachable": "hold",
                "unreachable_timeout": "5m",
            }
        ],
    )
    base.update(kw)
    return PolicyConfig.model_validate(base)


def pending() -> Release:
    return Release(
        id="r-1",
        application="shop",
        namespace="prod",
        service="web",
        source_version="1.0.0",
        target_version="1.1.0",
        policy="gated",
        created_at=T0,
        updated_at=T0,
        desired_weights={"1.0.0": 100},
    )


def seen(point: str, **gates: GateObservation) -> Observations:
    return Observations(at=T0, gates=GateObservations(point=point, gates=gates))


def test_gate_points_name_the_step_about_to_start_and_promotion() -> None:
    p = policy()
    assert [g.name for g in gates_at(p, step_point(0))] == ["freeze"]
    assert [g.name for g in gates_at(p, "step-2")] == ["qa"]
    assert [g.name for g in gates_at(p, PROMOTION)] == ["tracker"]
    assert gates_at(p, "step-3") == [] and gates_at(p, "nonsense") == []


def test_config_refuses_duplicate_gate_names_and_unknown_kinds() -> None:
    twice = [{"name": "qa", "type": "manual"}, {"name": "qa", "type": "manual"}]
    with pytest.raises(ValidationError, match="two gates are named 'qa'"):
        policy(gates_before_promotion=twice)
    with pytest.raises(ValidationError, match="manual"):
        policy(gates_before_promotion=[{"name": "x", "type": "email"}])
    with pytest.raises(ValidationError, match="timeout must be between 0 and 30s"):
        policy(gates_before_promotion=[{"name": "x", "type": "webhook", "url": "http://x", "timeout": "2m"}])
    with pytest.raises(ValidationError, match="url"):
        policy(gates_before_promotion=[{"name": "x", "type": "webhook", "url": "ftp://x"}])


def test_a_pending_release_asks_its_first_steps_gates_before_any_weight() -> None:
    p, rel = policy(), pending()
    asked = decide(rel, p, Observations(at=T0), T0)
    assert asked.kind == "hold" and asked.gates_needed == "step-1" and asked.weights is None
    assert "freeze" in asked.reason

    go = GateObservation(name="freeze", kind="webhook", status="go", since=T0)
    started = decide(rel, p, seen("step-1", freeze=go), T0)
    assert started.kind == "start" and started.weights == {"1.0.0": 90, "1.1.0": 10}


def test_no_go_fails_the_release_with_the_gates_reason_and_stable_weights() -> None:
    no = GateObservation(name="freeze", kind="webhook", status="no_go", detail="answered 403: change freeze", since=T0)
    d = decide(pending(), policy(), seen("step-1", freeze=no), T0)
    assert d.kind == "fail" and d.weights == {"1.0.0": 100}
    assert d.reason == "gate 'freeze' said no-go before step 1: answered 403: change freeze"


def test_unreachable_holds_until_its_timeout_then_fails_or_fails_at_once() -> None:
    rel, p = pending(), policy()
    down = GateObservation(name="tracker", kind="webhook", status="unreachable", detail="no answer", since=T0)
    held = check_gates(rel, p, PROMOTION, seen(PROMOTION, tracker=down), T0 + 299)
    assert held is not None and held.kind == "hold" and "unreachable" in held.reason
    failed = check_gates(rel, p, PROMOTION, seen(PROMOTION, tracker=down), T0 + 300)
    assert failed is not None and failed.kind == "fail"
    assert "unreachable for 300s before promotion (unreachable_timeout)" in failed.reason

    strict = policy(
        gates_before_promotion=[{"name": "tracker", "type": "webhook", "url": "http://g", "on_unreachable": "fail"}]
    )
    at_once = check_gates(rel, strict, PROMOTION, seen(PROMOTION, tracker=down), T0)
    assert at_once is not None and at_once.kind == "fail" and "unreachable" in at_once.reason


def test_manual_gate_waits_with_its_name_then_passes_once_approved() -> None:
    rel, p = pending(), policy()
    waiting = GateObservation(name="qa", kind="manual", status="pending", since=T0)
    d = check_gates(rel, p, "step-2", seen("step-2", qa=waiting), T0 + 10)
    assert d is not None and d.kind == "hold" and d.reason == "waiting for approval: qa"
    assert d.approval is not None and (d.approval.point, d.approval.gate) == ("step-2", "qa")

    late = check_gates(rel, p, "step-2", seen("step-2", qa=waiting), T0 + 3600)
    assert late is not None and late.kind == "fail" and "no approval for gate 'qa'" in late.reason

    approved = GateObservation(name="qa", kind="manual", status="go", since=T0, by="slack:U1 (alice)")
    assert check_gates(rel, p, "step-2", seen("step-2", qa=approved), T0 + 10) is None


def test_observations_of_another_gate_point_are_not_taken_for_this_one() -> None:
    go = GateObservation(name="freeze", kind="webhook", status="go", since=T0)
    d = check_gates(pending(), policy(), PROMOTION, seen("step-1", freeze=go), T0)
    assert d is not None and d.gates_needed == PROMOTION


def test_a_policy_without_gates_decides_as_before() -> None:
    p = policy(steps=[{"weight": 10}, {"weight": 100}], gates_before_promotion=[])
    d = decide(pending(), p, Observations(at=T0), T0)
    assert d.kind == "start" and d.gates_needed is None


def test_the_readme_example_loads_with_its_gates() -> None:
    from pathlib import Path

    from app.config_file.loader import load_config

    cfg = load_config(str(Path(__file__).resolve().parents[2] / "examples" / "gates.yaml"))
    gated = cfg.policy("gated")
    assert [(g.name, g.type) for g in gated.steps[0].gates] == [("change-freeze", "webhook")]
    assert [(g.name, g.type) for g in gated.gates_before_promotion] == [("product-owner", "manual")]
    assert "approval_requested" in cfg.hooks[0].on


def test_a_shadow_release_asks_no_gate() -> None:
    shadow = pending().model_copy(update={"mode": "shadow"})
    d = decide(shadow, policy(), Observations(at=T0), T0)
    assert d.kind == "start" and d.gates_needed is None
