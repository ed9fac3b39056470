"""Fleets without I/O: the configuration's waves (names, patterns, the mistakes `sluice validate`
reports) and the pure rules of a wave's progress (app/core/fleet.py)."""

from __future__ import annotations

import pytest

from app.config_file.loader import ConfigError, parse_config
from app.core.config.fleets import resolve_waves
from app.core.fleet import Fleet, FleetWave, failure_state, judge_wave, member_release_id
from app.core.models import Release

APPS = ("canary", "eu-1", "eu-2", "us-east", "us-west")


def config(fleets: str, circleci: str = "") -> str:
    apps = "".join(
        f"""
  - name: {a}
    router: {{type: haproxy, socket: "127.0.0.1:1"}}
    services: [{{name: checkout, policy: p, stable_version: "1.0.0"}}]"""
        for a in APPS
    )
    return f"""
applications:{apps}
policies:
  - {{name: p, steps: [{{weight: 10}}, {{weight: 100}}]}}
fleets:
{fleets}
{circleci}"""


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.render()


def test_waves_resolve_names_and_patterns_in_order() -> None:
    cfg = parse_config(config("  - {name: all, service: checkout, waves: [[canary], [eu-*], ['us-*']]}"))
    assert resolve_waves(cfg.fleets[0], list(APPS)) == [["canary"], ["eu-1", "eu-2"], ["us-east", "us-west"]]
    assert cfg.fleets[0].on_failure == "rollback"


def test_a_pattern_that_matches_nothing_is_refused_with_the_applications_that_have_the_service() -> None:
    text = problems(config("  - {name: all, service: checkout, waves: [[canary], [ap-*]]}"))
    assert "fleet 'all', wave 2: 'ap-*' matches no application holding service 'checkout'" in text
    assert "canary, eu-1, eu-2, us-east, us-west" in text


def test_an_application_in_two_waves_or_two_fleets_of_a_service_are_refused() -> None:
    assert "application 'eu-1' is in wave 1 and wave 2" in problems(
        config("  - {name: all, service: checkout, waves: [[eu-1], ['eu-*']]}")
    )
    assert "names 'eu-1' twice" in problems(config("  - {name: all, service: checkout, waves: [[eu-1], [eu-1]]}"))
    two = "  - {name: a, service: checkout, waves: [[canary]]}\n  - {name: b, service: checkout, waves: [[eu-1]]}"
    assert "two fleets release service 'checkout'" in problems(config(two))
    assert "approve_before names wave 4, but it has 2" in problems(
        config("  - {name: a, service: checkout, waves: [[canary], [eu-1]], approve_before: [4]}")
    )
    assert "Input should be 'rollback' or 'hold'" in problems(
        config("  - {name: a, service: checkout, waves: [[canary]], on_failure: retry}")
    )


def test_a_ci_mapping_may_name_a_fleets_service_without_an_application() -> None:
    deploy = "{job: deploy, service: checkout, version: '1.{pipeline.number}'}"
    circle = f"circleci:\n  projects: [{{slug: gh/acme/shop, deploys: [{deploy}]}}]"
    assert parse_config(config("  - {name: a, service: checkout, waves: [[canary], ['eu-*', 'us-*']]}", circle))
    assert "is in several applications" in problems(config("  []", circle))


def release(app: str, state: str, rid: str | None = None) -> Release:
    return Release(
        id=rid or f"r-{app}",
        application=app,
        namespace="default",
        service="checkout",
        source_version="1.0.0",
        target_version="1.1.0",
        policy="p",
        state=state,  # type: ignore[arg-type]
        created_at=0,
        updated_at=0,
        reason=f"{app} {state}",
    )


def test_a_wave_succeeds_when_every_member_released_and_fails_at_the_first_failure() -> None:
    wave = FleetWave(applications=["eu-1", "eu-2"], state="running")
    assert judge_wave(wave, {"eu-1": release("eu-1", "succeeded"), "eu-2": release("eu-2", "running")}).state == (
        "running"
    )
    done = judge_wave(wave, {"eu-1": release("eu-1", "succeeded"), "eu-2": release("eu-2", "succeeded")})
    assert done.state == "succeeded"
    failed = judge_wave(wave, {"eu-1": release("eu-1", "running"), "eu-2": release("eu-2", "aborted")})
    assert failed.state == "failed" and failed.reason == "eu-2: release r-eu-2 aborted: eu-2 aborted"
    skipped = FleetWave(applications=["eu-1", "eu-2"], skipped={"eu-2": "already stable"})
    assert judge_wave(skipped, {"eu-1": release("eu-1", "succeeded")}).state == "succeeded"
    broken = FleetWave(applications=["eu-1"], problems={"eu-1": "1.1.0 failed earlier"})
    assert judge_wave(broken, {}).reason == "eu-1: 1.1.0 failed earlier"


def test_a_failure_undoes_only_what_was_released_by_policy() -> None:
    fleet = Fleet(
        id="f-20261207000000-abcdef12",
        name="a",
        service="checkout",
        version="1.1.0",
        waves=[FleetWave(applications=["canary"]), FleetWave(applications=["eu-1", "eu-2"])],
        created_at=0,
        updated_at=0,
    )
    assert failure_state(fleet, {"canary": release("canary", "failed")}) == "failed"
    first_wave_half_done = {"eu-1": release("eu-1", "succeeded"), "eu-2": release("eu-2", "failed")}
    assert failure_state(fleet.model_copy(update={"waves": fleet.waves[1:]}), first_wave_half_done) == "rolling_back"
    second = fleet.model_copy(update={"wave": 1})
    assert failure_state(second, {"eu-2": release("eu-2", "failed")}) == "rolling_back"
    assert failure_state(second.model_copy(update={"on_failure": "hold"}), {}) == "held"
    ids = {member_release_id(fleet.id, w, a) for w in (0, 1) for a in ("canary", "eu-1")}
    assert len(ids) == 4 and all(i.startswith("r-20261207000000-") for i in ids)
    assert member_release_id(fleet.id, 1, "eu-1") == member_release_id(fleet.id, 1, "eu-1")
