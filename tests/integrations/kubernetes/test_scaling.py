"""Scale with traffic and ready before shift, on the fake API server (real HTTP, the official client):
what a user would check with kubectl - the candidate's replicas (or its HPA's minReplicas) raised
before the route gives it more traffic, the route untouched while it is not ready, the old version
scaled to 0 after the delay, and what Sluice scaled put back when the release fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.release.intake import start_release
from app.release.scaling import finish
from tests.support.cluster import CONFIG, cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.fakes import FakePrometheus
from tests.support.sim import NS, Sim, running_engine, wait_for
from workers.tick import tick

pytestmark = pytest.mark.integration
HPA = ("autoscaling", "horizontalpodautoscalers")


@pytest.fixture
def scale_ctx(redis_url: str, prom: FakePrometheus, kubeconfig: Path) -> Iterator[Callable[..., Context]]:
    made: list[Context] = []

    def make(scale: str = "{scale_down_delay: 1s}", policy_extra: str = "") -> Context:
        text = CONFIG.replace("interval: 500ms", "interval: 500ms" + policy_extra)
        extra = ", stable_version: 1.0.0" + (f", scale: {scale}" if scale else "")
        filled = text.format(kubeconfig=kubeconfig, router="gateway-api", web_extra=extra, cluster_extra="")
        ctx = Context(config=parse_config(filled), redis_url=redis_url, prometheus_url=prom.url)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.prometheus.close()
        ctx.store.r.close()


def _tick(ctx: Context, rid: str) -> str:
    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


def replicas(api: FakeApiServer, version: str) -> int:
    dep = api.get("apps", "deployments", NS, f"web-{version.replace('.', '-')}")
    assert dep is not None
    return int(dep["spec"]["replicas"])


def scale_writes(api: FakeApiServer, version: str) -> list[Any]:
    name = f"web-{version.replace('.', '-')}"
    return [w for w in api.writes_to("deployments", name) if w.verb == "patch"]


def live(api: FakeApiServer) -> dict[str, int]:
    """The HTTPRoute's split as a user reads it: versions with weight."""
    return {v: w for v, w in cluster_weights(api, "gateway-api").items() if w}


def route_writes(api: FakeApiServer) -> list[Any]:
    return api.writes_to("httproutes", "web")


def events(ctx: Context, rid: str, kind: str) -> list[str]:
    return [e.message for e in ctx.store.events(rid) if e.type == kind]


def test_replicas_are_raised_before_the_weight_moves_and_the_old_version_goes_to_zero_after_the_delay(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")  # stable 1.0.0: 3 ready replicas
    sim.deployment("web", "1.1.0", replicas=1)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert _tick(ctx, rid).startswith("start")  # 10% needs ceil(3 x 0.1) = 1 replica: it has one
    assert live(api) == {"1.0.0": 90, "1.1.0": 10}
    assert scale_writes(api, "1.1.0") == []

    # The 10% step passed; 50% needs 2 replicas: Sluice scales, and holds until they are ready.
    out = _tick(ctx, rid)
    assert out == "hold: waiting for 1.1.0 to be ready: 1 of 2 replicas ready", out
    assert replicas(api, "1.1.0") == 2
    assert [w.body["spec"] for w in scale_writes(api, "1.1.0")] == [{"replicas": 2}]
    assert live(api) == {"1.0.0": 90, "1.1.0": 10}  # not moved yet
    assert "hold: waiting for 1.1.0 to be ready" in _tick(ctx, rid)
    assert len(scale_writes(api, "1.1.0")) == 1  # idempotent: asked once

    sim.make_available("web", "1.1.0")  # the Deployment controller: 2 of 2 ready
    assert _tick(ctx, rid).startswith("advance")
    assert live(api) == {"1.0.0": 50, "1.1.0": 50}

    assert _tick(ctx, rid) == "hold: waiting for 1.1.0 to be ready: 2 of 3 replicas ready"
    assert replicas(api, "1.1.0") == 3
    sim.make_available("web", "1.1.0")
    assert _tick(ctx, rid).startswith("advance")
    assert live(api) == {"1.1.0": 100}
    # Each raise came before the route write that gave the candidate the traffic it is for.
    raises = [w.at for w in scale_writes(api, "1.1.0")]
    shifts = [w.at for w in route_writes(api)]
    assert raises[0] < shifts[1] and raises[1] < shifts[2], (raises, shifts)
    scaled = events(ctx, rid, "scaled")
    assert scaled == [
        "scaling Deployment web-1-1-0 from 1 to 2 replicas for 50% of traffic (stable has 3 ready)",
        "scaling Deployment web-1-1-0 from 2 to 3 replicas for 100% of traffic (stable has 3 ready)",
    ]
    assert ctx.store.scaling.originals(rid) == {"deployment/web-1-1-0": 1}  # the first value, kept

    assert _tick(ctx, rid).startswith("promote")
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "succeeded" and rel.finished_at is not None
    # The old version is kept warm for scale_down_delay (1 s here), through the `due` schedule.
    assert ctx.store.scaling.scheduled_at(rid) is not None
    with running_engine(ctx):
        assert replicas(api, "1.0.0") == 3
        wait_for(lambda: replicas(api, "1.0.0") == 0, timeout=10, what="the old version to be scaled to 0")
    scaled_down = time.time()
    assert scaled_down - rel.finished_at >= 1.0
    [down] = events(ctx, rid, "scaled_down")
    assert down == "scaled 1.0.0 down (Deployment web-1-0-0: 3 -> 0 replicas) 1s after promotion"
    assert ctx.store.scaling.scheduled_at(rid) is None  # done: nothing left to run
    assert replicas(api, "1.1.0") == 3  # the new stable keeps what it needs
    # The warm way back is closed: an instant rollback is refused rather than routed to nothing.
    from app.release.rollback import RollbackError, rollback

    with pytest.raises(RollbackError) as refused:
        rollback(ctx, "web", reason="too late")
    assert refused.value.status == 409 and "cannot take traffic" in str(refused.value)


def test_an_hpa_gets_its_min_replicas_raised_instead_and_put_back_when_the_release_fails(
    api: FakeApiServer, sim: Sim, prom: FakePrometheus, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=1)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-1-1-0", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-1-1-0"},
            "minReplicas": 1,
            "maxReplicas": 10,
        },
    }
    api.apply(hpa)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert _tick(ctx, rid).startswith("start")

    out = _tick(ctx, rid)
    assert out == "hold: waiting for 1.1.0 to be ready: 1 of 2 replicas ready", out
    got = api.get(*HPA, NS, "web-1-1-0")
    assert got is not None and got["spec"]["minReplicas"] == 2 and got["spec"]["maxReplicas"] == 10
    assert scale_writes(api, "1.1.0") == []  # the HPA sizes the Deployment, not Sluice
    assert events(ctx, rid, "scaled") == [
        "raising HorizontalPodAutoscaler web-1-1-0's minReplicas from 1 to 2 for 50% of traffic (stable has 3 ready)"
    ]

    # The HPA controller follows its new minimum; then the release goes on to 50%.
    api.mutate("apps", "deployments", NS, "web-1-1-0", lambda d: d["spec"].update(replicas=2))
    sim.make_available("web", "1.1.0")
    assert _tick(ctx, rid).startswith("advance")
    assert live(api) == {"1.0.0": 50, "1.1.0": 50}

    prom.serve("1.1.0", 2000, errors=600)  # 30% errors: the release fails
    assert _tick(ctx, rid).startswith("fail")
    assert live(api) == {"1.0.0": 100}
    assert ctx.store.scaling.scheduled_at(rid) is not None
    assert finish(ctx, rid, time.time()).startswith("put back what Sluice scaled for 1.1.0")
    got = api.get(*HPA, NS, "web-1-1-0")
    assert got is not None and got["spec"]["minReplicas"] == 1
    assert events(ctx, rid, "scaled_back") == [
        "put back what Sluice scaled for 1.1.0: HorizontalPodAutoscaler web-1-1-0 minReplicas 1"
    ]
    assert ctx.store.scaling.scheduled_at(rid) is None
    writes = len(api.writes)
    assert finish(ctx, rid, time.time()).startswith("nothing")  # once only
    assert len(api.writes) == writes


def test_a_failure_puts_the_candidates_replicas_back_after_traffic_is_back_on_stable(
    api: FakeApiServer, sim: Sim, prom: FakePrometheus, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=1)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert _tick(ctx, rid).startswith("start")
    assert _tick(ctx, rid).startswith("hold: waiting for 1.1.0 to be ready")
    assert replicas(api, "1.1.0") == 2

    prom.serve("1.1.0", 2000, errors=600)
    with running_engine(ctx):  # the failing tick, then the replicas work from the `due` set
        wait_for(lambda: replicas(api, "1.1.0") == 1, timeout=10, what="the candidate's replicas to be put back")
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "failed"
    assert live(api) == {"1.0.0": 100}
    [back] = events(ctx, rid, "scaled_back")
    assert back == "put back what Sluice scaled for 1.1.0: Deployment web-1-1-0 1 replicas"
    # Traffic left the candidate before its replicas did.
    last_route = route_writes(api)[-1].at
    assert scale_writes(api, "1.1.0")[-1].at > last_route
    assert replicas(api, "1.0.0") == 3  # a failed release never scales stable down


def test_a_scale_patch_that_meets_a_conflict_is_retried_on_the_new_resource_version(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=1)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert _tick(ctx, rid).startswith("start")

    def someone_else() -> None:  # e.g. kubectl annotate, between Sluice's read and its write
        api.mutate(
            "apps", "deployments", NS, "web-1-1-0", lambda d: d["metadata"].setdefault("annotations", {}).update(x="y")
        )

    api.before_next_write("apps", "deployments", someone_else)
    assert _tick(ctx, rid).startswith("hold: waiting for 1.1.0 to be ready: 1 of 2")
    statuses = [w.status for w in api.writes if w.plural == "deployments" and w.name == "web-1-1-0"]
    assert 409 in statuses and statuses[-1] == 200
    dep = api.get("apps", "deployments", NS, "web-1-1-0")
    assert dep is not None and dep["spec"]["replicas"] == 2 and dep["metadata"]["annotations"]["x"] == "y"


def test_a_candidate_with_no_ready_replica_holds_the_start_then_fails_at_ready_timeout(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx(scale="", policy_extra="\n    ready_timeout: 1s")  # no `scale:` - readiness holds anyway
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=2, available=False)  # pods not ready
    routes_before = len(route_writes(api))
    rid = start_release(ctx, "web", "1.1.0").release.id

    assert _tick(ctx, rid) == "hold: waiting for 1.1.0 to be ready: 0 of 1 replicas ready"
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "pending" and rel.unready_since is not None
    time.sleep(1.05)
    out = _tick(ctx, rid)
    assert out.startswith("fail: waiting for 1.1.0 to be ready: 0 of 1 replicas ready, still after 1s (ready_timeout)")
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "failed" and rel.weights_applied
    # The candidate never got any weight: no route write gave its Service more than 0.
    written = [
        ref.get("weight", 1)
        for w in route_writes(api)[routes_before:]
        for rule in w.body["spec"]["rules"]
        for ref in rule.get("backendRefs", [])
        if ref["name"] == "web-1-1-0"
    ]
    assert all(weight == 0 for weight in written), written
    assert live(api) == {"1.0.0": 100}
    assert scale_writes(api, "1.1.0") == []  # without `scale:`, Sluice never sizes Deployments
    assert [e.type for e in ctx.store.events(rid)].count("hold") == 1  # one hold event, not one per tick


def test_without_scale_readiness_asks_only_for_the_replicas_the_deployment_has(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx(scale="")
    setup_cluster(sim, "gateway-api")  # stable: 3 ready
    sim.deployment("web", "1.1.0", replicas=2)
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert _tick(ctx, rid).startswith("start")
    assert _tick(ctx, rid).startswith("advance")
    assert _tick(ctx, rid).startswith("advance")  # 100% would need 3; the Deployment asks for 2, both ready
    assert live(api) == {"1.1.0": 100}
    assert scale_writes(api, "1.1.0") == [] and ctx.store.scaling.scheduled_at(rid) is None


def test_the_scale_down_runs_from_the_due_schedule_through_rq_and_survives_a_worker_dying(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:

    from app.context import set_context
    from app.store import queues as rq_queues
    from workers.scheduler import QUEUE_NAME, enqueue_due

    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=3)  # already big enough: nothing to raise
    rid = start_release(ctx, "web", "1.1.0").release.id
    for _ in range(6):
        if _tick(ctx, rid).startswith("promote"):
            break
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "succeeded"
    assert ctx.store.scaling.originals(rid) == {}

    # A worker takes the item and dies before running it: it comes due again after its lease.
    [taken] = [m for m in ctx.store.claim_due(time.time(), lease=0.3) if m.startswith("scale:")]
    assert taken == f"scale:{rid}"
    set_context(ctx)  # what the RQ job (workers.scale.run_scale) uses
    try:
        queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
        deadline = time.monotonic() + 15
        while replicas(api, "1.0.0") != 0 and time.monotonic() < deadline:
            enqueue_due(ctx.store, queue)
            rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
            time.sleep(0.1)
        assert len(queue.failed_job_registry) == 0
    finally:
        set_context(None)
    assert replicas(api, "1.0.0") == 0 and replicas(api, "1.1.0") == 3
    assert ctx.store.scaling.scheduled_at(rid) is None
    assert len(events(ctx, rid, "scaled_down")) == 1


def test_a_shadow_release_scales_nothing_and_schedules_no_scale_down(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=1)
    rid = start_release(ctx, "web", "1.1.0", mode="shadow").release.id
    outs = [_tick(ctx, rid) for _ in range(6)]
    rel = ctx.store.get(rid)
    assert rel is not None and rel.terminal, outs
    assert not any("waiting for 1.1.0 to be ready" in out for out in outs), outs
    assert scale_writes(api, "1.1.0") == [] and scale_writes(api, "1.0.0") == []
    assert ctx.store.scaling.scheduled_at(rid) is None
    assert replicas(api, "1.0.0") == 3


def test_a_rollback_within_the_delay_keeps_the_old_version_from_being_scaled_down(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    from app.release.rollback import rollback

    ctx = scale_ctx()
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=3)
    rid = start_release(ctx, "web", "1.1.0").release.id
    for _ in range(6):
        if _tick(ctx, rid).startswith("promote"):
            break
    back = rollback(ctx, "web", reason="checkout is broken")  # within scale_down_delay: 1.0.0 still warm
    assert back.state == "succeeded" and live(api) == {"1.0.0": 100}
    rel = ctx.store.get(rid)
    assert rel is not None and rel.finished_at is not None
    out = finish(ctx, rid, rel.finished_at + 1.5)  # the promotion's scale-down comes due
    assert out == "1.0.0 in use again", out
    assert replicas(api, "1.0.0") == 3
    assert events(ctx, rid, "scale_down_skipped") == ["1.0.0 is in use again; not scaled down"]


def test_a_bake_keeps_the_old_version_warm_until_it_ends_then_scale_down_delay_applies(
    api: FakeApiServer, sim: Sim, scale_ctx: Callable[..., Context]
) -> None:
    ctx = scale_ctx(policy_extra="\n    bake: 2s")  # docs/bake.md: the scale-down follows the bake's end
    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0", replicas=3)
    rid = start_release(ctx, "web", "1.1.0").release.id

    def state() -> str:
        rel = ctx.store.get(rid)
        assert rel is not None
        return rel.state

    wait_for(lambda: _tick(ctx, rid) and state() == "baking", timeout=15, what="the release to bake")
    assert live(api) == {"1.1.0": 100}
    assert ctx.store.scaling.scheduled_at(rid) is None  # nothing to scale while it bakes
    with running_engine(ctx):
        wait_for(lambda: state() == "succeeded", timeout=15, what="the bake to end")
        assert replicas(api, "1.0.0") == 3  # warm through the whole bake
        wait_for(lambda: replicas(api, "1.0.0") == 0, timeout=10, what="the old version to be scaled to 0")
    scaled_down = time.time()
    rel = ctx.store.get(rid)
    assert rel is not None and rel.finished_at is not None and rel.bake_started_at is not None
    assert rel.finished_at - rel.bake_started_at >= 2.0 and scaled_down - rel.finished_at >= 1.0
    assert events(ctx, rid, "scaled_down") == [
        "scaled 1.0.0 down (Deployment web-1-0-0: 3 -> 0 replicas) 1s after its bake"
    ]
