"""Fleets through the scheduler and a real RQ worker on real Redis: one announcement releases `api`
over four applications (each its own router) in three waves; the fake Prometheus makes the new
version bad in some of them; CircleCI is a local HTTP server that refuses what the real one does.

What a person checks: each application's router weights, the order of the waves, the held CircleCI
job approved once (or left on hold and the cleanup pipeline triggered once), the fleet's record."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.context import Context, set_context
from app.core.fleet import member_release_id
from app.release import fleet_effects
from app.release.fleet_members import start_member
from app.release.fleets import advance
from app.web import create_app
from tests.support.ci import CIRCLE_TOKEN
from tests.support.ci_fakes import FakeCircleCI
from tests.support.fleets import (
    CLUSTERS,
    FLEET_TOKEN,
    NEW,
    STABLE,
    ClusterPrometheus,
    announce,
    announcement,
    fleet_context,
    routers,
    run_until,
    run_until_finished,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_prom() -> Iterator[ClusterPrometheus]:
    server = ClusterPrometheus().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("CIRCLECI_TOKEN", CIRCLE_TOKEN)
    monkeypatch.setenv("SLUICE_API_TOKEN", FLEET_TOKEN)
    monkeypatch.delenv("CIRCLECI_API_URL", raising=False)
    return monkeypatch


@pytest.fixture
def bench(redis_url: str, cluster_prom: ClusterPrometheus, circle: FakeCircleCI, env: pytest.MonkeyPatch):
    made: list[Context] = []

    def build(on_failure: str = "rollback", approve: str = "") -> Context:
        ctx = fleet_context(redis_url, circle, cluster_prom.url, on_failure, approve)
        made.append(ctx)
        return ctx

    yield build
    set_context(None)
    for ctx in made:
        ctx.prometheus.close()
        ctx.store.r.close()


def api(path: str, method: str = "GET") -> dict:
    client = create_app().test_client()
    resp = client.open(path, method=method, headers={"Authorization": f"Bearer {FLEET_TOKEN}"})
    return {"status": resp.status_code, **resp.get_json()}


def test_three_waves_release_every_cluster_in_order_and_approve_ci_once(bench, circle: FakeCircleCI) -> None:
    ctx = bench()
    clusters = routers(ctx)
    answer, workflow_id = announce(circle)
    assert answer["fleet"].startswith("f-") and answer["fleet_url"] == f"/api/v1/fleets/{answer['fleet']}"
    assert answer["release"] == member_release_id(answer["fleet"], 0, "canary")

    fleet = run_until_finished(ctx, answer["fleet"])

    assert fleet.state == "succeeded", fleet.reason
    assert [w.applications for w in fleet.waves] == [["canary"], ["eu-1", "eu-2"], ["us-1"]]
    for name in CLUSTERS:
        assert clusters[name].weights["api"] == {STABLE: 0, NEW: 100}, name
    # Wave after wave: no application of a wave got traffic before the wave before it had finished.
    starts = [w.started_at or 0 for w in fleet.waves]
    ends = [w.finished_at or 0 for w in fleet.waves]
    assert starts[1] >= ends[0] and starts[2] >= ends[1]
    # CircleCI was told once, by the fleet: the held job approved once, nothing by the members.
    assert circle.approved == [(workflow_id, "released-by-sluice")]
    assert circle.pipelines == []
    shown = api(f"/api/v1/fleets/{fleet.id}")
    assert shown["status"] == 200 and shown["state"] == "succeeded"
    assert [[m["state"] for m in w["members"]] for w in shown["waves"]] == [
        ["succeeded"],
        ["succeeded"] * 2,
        ["succeeded"],
    ]
    assert [d["hook"] for d in shown["deliveries"]] == ["approve"] and shown["deliveries"][0]["state"] == "delivered"
    members = ctx.store.get_many(fleet.member_ids())
    assert len(members) == 4 and all(r.fleet == fleet.id and r.hooks == [] for r in members)
    assert api("/api/v1/fleets")["fleets"][0]["id"] == fleet.id


def test_a_failing_last_wave_stops_the_fleet_and_rolls_back_the_waves_done(
    bench, circle: FakeCircleCI, cluster_prom: ClusterPrometheus
) -> None:
    ctx = bench()
    clusters = routers(ctx)
    cluster_prom.bad = {"us-1"}
    answer, workflow_id = announce(circle)

    fleet = run_until_finished(ctx, answer["fleet"])

    assert fleet.state == "rolled_back"
    assert fleet.reason is not None and fleet.reason.startswith("wave 3 failed: us-1: release")
    assert [w.state for w in fleet.waves] == ["succeeded", "succeeded", "failed"]
    for name in CLUSTERS:  # every cluster back on the previous version
        assert clusters[name].weights["api"][STABLE] == 100, (name, clusters[name].weights)
        assert ctx.store.stable_version(name, "api") in (STABLE, None), name  # None: never changed (us-1)
    assert set(fleet.rollbacks) == {"canary", "eu-1", "eu-2"}
    assert all(
        r.state == "succeeded" and r.trigger == "rollback" for r in ctx.store.get_many(list(fleet.rollbacks.values()))
    )
    # CI: the held job is left on hold, and the cleanup pipeline is triggered once, for the fleet.
    assert circle.approved == []
    assert circle.pipelines == [
        {
            "slug": "gh/acme/shop",
            "run": False,
            "body": {"branch": "main", "parameters": {"cleanup": True, "version": NEW}},
        }
    ]


def test_hold_leaves_the_waves_done_on_the_new_version(bench, circle: FakeCircleCI, cluster_prom: ClusterPrometheus):
    ctx = bench("hold")
    clusters = routers(ctx)
    cluster_prom.bad = {"eu-2"}
    answer, _ = announce(circle)

    fleet = run_until_finished(ctx, answer["fleet"])

    assert fleet.state == "held" and fleet.wave == 1 and fleet.rollbacks == {}
    assert clusters["canary"].weights["api"][NEW] == 100  # held: wave 1 keeps the new version
    assert clusters["eu-2"].weights["api"][STABLE] == 100  # the failed member went back by itself
    assert clusters["us-1"].weights["api"] == {STABLE: 100}  # wave 3 never started
    assert fleet.waves[2].state == "pending" and fleet.waves[2].releases == {}
    eu1 = ctx.store.get(fleet.waves[1].releases["eu-1"])
    assert eu1 is not None and eu1.terminal  # stopped with its wave (aborted, or finished first)


def test_a_failing_first_wave_touches_no_other_cluster(bench, circle: FakeCircleCI, cluster_prom: ClusterPrometheus):
    ctx = bench()
    clusters = routers(ctx)
    cluster_prom.bad = {"canary"}
    answer, _ = announce(circle)

    fleet = run_until_finished(ctx, answer["fleet"])

    assert fleet.state == "failed" and fleet.rollbacks == {}
    assert all(clusters[n].applied == [] for n in ("eu-1", "eu-2", "us-1"))


def test_a_wave_started_twice_after_a_crash_makes_each_release_once(bench, circle: FakeCircleCI) -> None:
    ctx = bench()
    routers(ctx)
    answer, _ = announce(circle)
    fleet = ctx.store.fleets.get(answer["fleet"])
    assert fleet is not None
    # A look that died after creating wave 2's releases but before recording the wave: the releases
    # exist, the fleet does not know them. The next look must find them, not make new ones.
    made = [start_member(ctx, fleet, 1, app).id for app in ("eu-1", "eu-2")]
    again = [start_member(ctx, fleet, 1, app).id for app in ("eu-1", "eu-2")]
    assert made == again
    advance(ctx, fleet.id)  # and a look redone while another is recorded is refused by the seq
    done = run_until_finished(ctx, fleet.id)
    assert done.state == "succeeded" and sorted(done.waves[1].releases.values()) == sorted(made)
    for app in CLUSTERS:
        assert len(ctx.store.list_releases(service="api", application=app)[0]) == 1, app
    # A duplicate announcement answers with the same fleet.
    resp = (
        create_app()
        .test_client()
        .post("/hooks/deploy", json=announcement("w"), headers={"Authorization": f"Bearer {FLEET_TOKEN}"})
    )
    assert resp.status_code == 200 and resp.get_json()["fleet"] == fleet.id


def test_abort_stops_the_fleet_and_its_releases_in_flight(bench, circle: FakeCircleCI) -> None:
    ctx = bench()
    clusters = routers(ctx)
    answer, _ = announce(circle)
    aborted = api(f"/api/v1/fleets/{answer['fleet']}/abort", "POST")
    assert aborted["status"] == 200 and aborted["state"] == "aborted", aborted
    fleet = run_until_finished(ctx, answer["fleet"])
    assert fleet.state == "aborted" and ctx.store.get(answer["release"]).state == "aborted"
    assert clusters["canary"].weights["api"][STABLE] == 100 and clusters["eu-1"].applied == []
    again = api(f"/api/v1/fleets/{answer['fleet']}/abort", "POST")
    assert again["status"] == 409 and "aborted" in again["error"]
    assert api("/api/v1/fleets/f-nope")["status"] == 404


def test_a_worker_dying_after_the_failure_is_recorded_still_rolls_back(
    bench, circle: FakeCircleCI, cluster_prom: ClusterPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = bench()
    clusters = routers(ctx)
    cluster_prom.bad = {"eu-2"}
    real = fleet_effects.roll_back_released
    died: list[str] = []

    def dies_once(ctx: Context, fleet):  # the worker dies right after the look recorded `rolling_back`
        if not died:
            died.append(fleet.state)
            raise SystemExit("worker killed")
        return real(ctx, fleet)

    monkeypatch.setattr(fleet_effects, "roll_back_released", dies_once)
    answer, _ = announce(circle)

    fleet = run_until_finished(ctx, answer["fleet"], crashes=1)

    assert died == ["rolling_back"]  # the failure was recorded before the worker died
    eu1 = ctx.store.get(fleet.waves[1].releases["eu-1"])
    assert eu1 is not None and eu1.state in ("aborted", "succeeded")  # stopped with its wave, or done first
    done = {"canary"} | ({"eu-1"} if eu1.state == "succeeded" else set())
    assert fleet.state == "rolled_back" and set(fleet.rollbacks) == done
    for name in CLUSTERS:
        assert clusters[name].weights["api"][STABLE] == 100, name
    rollbacks = ctx.store.list_releases(service="api", application="canary")[0]
    assert [r.trigger for r in rollbacks].count("rollback") == 1  # once, however often the look ran
    assert circle.pipelines and len(circle.pipelines) == 1


def test_a_wave_that_needs_approval_waits_for_a_person(bench, circle: FakeCircleCI) -> None:
    ctx = bench(approve="approve_before: [3]")
    clusters = routers(ctx)
    answer, _ = announce(circle)

    waiting = run_until(ctx, answer["fleet"], lambda f: f.awaiting_approval() == 3)
    assert [w.state for w in waiting.waves] == ["succeeded", "succeeded", "pending"]
    shown = api(f"/api/v1/fleets/{waiting.id}")
    assert shown["awaiting_approval"] == 3 and shown["state"] == "running"
    time.sleep(1.0)  # a few more looks: still waiting, us-1 untouched
    run_until(ctx, waiting.id, lambda f: True)
    assert clusters["us-1"].applied == [] and ctx.store.fleets.get(waiting.id).waves[2].state == "pending"

    approved = api(f"/api/v1/fleets/{waiting.id}/approve", "POST")
    assert approved["status"] == 200 and approved["approvals"] == {"3": "api"}, approved
    fleet = run_until_finished(ctx, waiting.id)
    assert fleet.state == "succeeded" and clusters["us-1"].weights["api"][NEW] == 100
    again = api(f"/api/v1/fleets/{waiting.id}/approve", "POST")
    assert again["status"] == 409 and "waits for no approval" in again["error"]
    assert "approved" in [e.type for e in ctx.store.fleets.events(fleet.id)]
