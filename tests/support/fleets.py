"""A fleet's test bench: four applications standing in for clusters (canary, eu-1, eu-2, us-1), each
with its own router, a Prometheus that can make the candidate bad in some of them, and a loop that
runs the scheduler and a real RQ worker as `sluice worker` does."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.fleet import Fleet
from app.store import queues as rq_queues
from tests.support.ci_fakes import FakeCircleCI
from tests.support.fakes import FakePrometheus, FakeRouter
from workers.scheduler import QUEUE_NAME, enqueue_due

CLUSTERS = ("canary", "eu-1", "eu-2", "us-1")
STABLE, NEW = "2.0.0", "2.1.0"
FLEET_TOKEN = "fleet-tests-api-token-0123456789"


def fleet_config(circle: FakeCircleCI, prom_url: str, on_failure: str = "rollback", approve: str = "") -> str:
    apps = "".join(
        f"""
  - name: {name}
    namespace: {name}
    router: {{type: haproxy, socket: "127.0.0.1:1"}}
    services:
      - {{name: api, policy: quick, stable_version: "{STABLE}"}}"""
        for name in CLUSTERS
    )
    return f"""
prometheus: {{url: "{prom_url}", timeout: 2s, namespace_label: namespace}}
applications:{apps}
policies:
  - name: quick
    interval: 500ms
    judge: {{warmup: 0s}}
    steps: [{{weight: 10}}, {{weight: 100}}]
fleets:
  - name: api-everywhere
    service: api
    waves: [[canary], [eu-*], [us-1]]
    on_failure: {on_failure}
    {approve}
hooks:
  - name: approve
    type: circleci_approve
    timeout: 2s
    max_attempts: 3
  - name: cleanup-failed
    type: circleci_trigger_pipeline
    on: [failed]
    branch: main
    parameters: {{cleanup: true, version: "{{target_version}}"}}
    timeout: 2s
    max_attempts: 3
circleci:
  api_url: {circle.base}
  projects:
    - slug: gh/acme/shop
      deploys: [{{job: deploy, service: api, version: "2.1.{{pipeline.number}}"}}]
"""


class ClusterPrometheus(FakePrometheus):
    """The fake Prometheus, with the candidate answering 30% errors in the namespaces in `bad`."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: set[str] = set()
        self.serve(STABLE, 18000)
        self.serve(NEW, 2000)

    def _vector_for(self, query: str) -> list[tuple[dict[str, str], float]] | None:
        bad = any(f'namespace="{ns}"' in query for ns in self.bad) and f'version="{NEW}"' in query
        if bad and query.startswith(f"sum by ({self.status_label}) ("):
            return [({self.status_label: "200"}, 1400.0), ({self.status_label: "500"}, 600.0)]
        return super()._vector_for(query)


def routers(ctx: Context) -> dict[str, FakeRouter]:
    made = {name: FakeRouter({"api": {STABLE: 100}}) for name in CLUSTERS}
    ctx._routers.update(made)
    return made


def run_until(ctx: Context, fleet_id: str, done: Any, timeout: float = 60.0) -> Fleet:
    """Scheduler and worker until `done(fleet)`."""
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        enqueue_due(ctx.store, queue)
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
        fleet = ctx.store.fleets.get(fleet_id)
        if fleet is not None and done(fleet):
            return fleet
        time.sleep(0.05)
    raise AssertionError(f"fleet {fleet_id} never got there: {ctx.store.fleets.get(fleet_id)}")


def run_until_finished(ctx: Context, fleet_id: str, timeout: float = 60.0, crashes: int = 0) -> Fleet:
    """Scheduler and worker until the fleet has finished and its hooks and members have settled
    (`crashes`: how many jobs a test made die on purpose)."""
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        enqueue_due(ctx.store, queue)
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
        fleet = ctx.store.fleets.get(fleet_id)
        assert fleet is not None
        members = ctx.store.get_many(fleet.member_ids() + list(fleet.rollbacks.values()))
        hooks = ctx.store.deliveries(fleet.hooks)
        if (
            fleet.terminal
            and all(r.terminal and r.weights_applied for r in members)
            and all(d.state != "pending" for d in hooks)
        ):
            assert len(queue.failed_job_registry) == crashes
            return fleet
        time.sleep(0.05)
    raise AssertionError(f"fleet {fleet_id} did not finish: {ctx.store.fleets.get(fleet_id)}")


def held_workflow(circle: FakeCircleCI, workflow_id: str) -> None:
    circle.add_workflow(
        workflow_id,
        [
            ("deploy", "build", "success"),
            ("released-by-sluice", "approval", "on_hold"),
            ("publish", "build", "blocked"),
        ],
    )


def announcement(workflow_id: str) -> dict[str, Any]:
    return {
        "service": "api",
        "version": NEW,
        "ci": {"provider": "circleci", "project_slug": "gh/acme/shop", "workflow_id": workflow_id},
    }


def fleet_context(
    redis_url: str, circle: FakeCircleCI, prom_url: str, on_failure: str = "rollback", approve: str = ""
) -> Context:
    """The process's context (set, as the worker and web read it) with the four clusters' routers."""
    context = Context(
        config=parse_config(fleet_config(circle, prom_url, on_failure, approve)),
        redis_url=redis_url,
        prometheus_url=prom_url,
    )
    set_context(context)
    return context


def announce(circle: FakeCircleCI) -> tuple[dict[str, Any], str]:
    """What CI sends for the fleet's service (no application), with a workflow whose approval job is held."""
    from app.web import create_app

    workflow_id = str(uuid.uuid4())
    held_workflow(circle, workflow_id)
    resp = (
        create_app()
        .test_client()
        .post("/hooks/deploy", json=announcement(workflow_id), headers={"Authorization": f"Bearer {FLEET_TOKEN}"})
    )
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json(), workflow_id
