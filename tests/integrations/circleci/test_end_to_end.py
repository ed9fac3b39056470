"""The talk's loop, end to end: a signed CircleCI `job-completed` webhook for the deploy job starts a
release; ticks and hook deliveries run through the scheduler and a real RQ worker on real Redis;
the fake Prometheus decides the outcome; CircleCI, Slack and PagerDuty are local HTTP servers.

- success: the held approval job is approved and the cleanup pipeline is triggered with the OLD
  version; Slack is told; PagerDuty's alert for the service (if any) is resolved;
- failure: traffic goes back to stable, the cleanup pipeline is triggered with the FAILED version,
  PagerDuty is triggered, Slack is told, and the held job is left alone.
"""

from __future__ import annotations

import time
import uuid

import pytest

from app.context import Context
from app.core.models import Release
from app.store import queues as rq_queues
from app.web import create_app
from tests.support.ci import CIRCLE_TOKEN, PD_KEY, SLUG, get, job_completed, signed
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty, FakeSlack, Fault
from tests.support.fakes import FakePrometheus, FakeRouter
from tests.support.web import read_api
from workers.scheduler import QUEUE_NAME, enqueue_due

pytestmark = pytest.mark.integration


def run_until_settled(ctx: Context, rid: str, timeout: float = 20.0) -> Release:
    """What `sluice worker` does: the scheduler moves due ticks/deliveries into RQ, a worker runs them."""
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        enqueue_due(ctx.store, queue)
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
        rel = get(ctx, rid)
        deliveries = ctx.store.deliveries(rel.hooks)
        if rel.terminal and rel.weights_applied and all(d.state != "pending" for d in deliveries):
            assert len(queue.failed_job_registry) == 0
            return rel
        time.sleep(0.05)
    raise AssertionError(f"release {rid} did not settle: {get(ctx, rid)}")


def announce(ctx: Context, circle: FakeCircleCI, number: int) -> tuple[str, str]:
    workflow_id = str(uuid.uuid4())
    circle.add_workflow(
        workflow_id,
        [("build", "build", "success"), ("deploy", "build", "success"),
         ("released-by-sluice", "approval", "on_hold"), ("publish", "build", "blocked")],
    )  # fmt: skip
    body, headers = signed(job_completed(job="deploy", number=number, workflow_id=workflow_id))
    resp = create_app().test_client().post("/hooks/circleci", data=body, headers=headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["release"], workflow_id


def shown_deliveries(rid: str) -> dict[str, dict]:
    data = read_api(f"/api/v1/releases/{rid}").get_json()
    return {d["hook"]: d for d in data["hook_deliveries"]}


def test_success_approves_the_held_job_and_cleans_up_the_old_version(
    ctx: Context, circle: FakeCircleCI, slack: FakeSlack, pagerduty: FakePagerDuty, router: FakeRouter
) -> None:
    circle.fail_next(Fault(429, {"message": "Rate limit exceeded"}, {"Retry-After": "1"}))  # the first call
    rid, workflow_id = announce(ctx, circle, 371)
    rel = run_until_settled(ctx, rid)

    assert rel.state == "succeeded" and rel.target_version == "2.0.371" and rel.source_version == "2.0.0"
    assert router.weights["api"] == {"2.0.0": 0, "2.0.371": 100}
    assert circle.approved == [(workflow_id, "released-by-sluice")]
    assert circle.pipelines == [
        {"slug": SLUG, "run": False, "body": {"branch": "main", "parameters": {"cleanup": True, "version": "2.0.0"}}}
    ]
    assert all(r.headers["Circle-Token"] == CIRCLE_TOKEN for r in circle.requests)
    assert len(slack.messages) == 1 and "api 2.0.371 promoted" in slack.messages[0]["text"]
    assert [e["event_action"] for e in pagerduty.events] == ["resolve"]

    shown = shown_deliveries(rid)
    assert set(shown) == {"approve", "cleanup-old", "slack", "pager"}
    assert all(d["state"] == "delivered" for d in shown.values()), shown
    statuses = sorted(
        [a["status"] for a in shown["approve"]["attempts"]] + [a["status"] for a in shown["cleanup-old"]["attempts"]]
    )
    assert statuses.count(429) == 1 and 202 in statuses and 201 in statuses  # one call was rate-limited, then retried
    assert CIRCLE_TOKEN not in str(shown) and PD_KEY not in str(shown)


def test_failure_cleans_up_the_failed_version_pages_and_posts(
    ctx: Context,
    circle: FakeCircleCI,
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    prom: FakePrometheus,
    router: FakeRouter,
) -> None:
    prom.serve("2.0.372", 2000, errors=600)  # 30% errors on the candidate
    pagerduty.fail_next(Fault(503, b"Service Unavailable"))
    rid, workflow_id = announce(ctx, circle, 372)
    rel = run_until_settled(ctx, rid)

    assert rel.state == "failed" and "errors" in (rel.reason or "")
    assert router.weights["api"] == {"2.0.0": 100, "2.0.372": 0}
    assert circle.pipelines == [
        {"slug": SLUG, "run": False, "body": {"branch": "main", "parameters": {"cleanup": True, "version": "2.0.372"}}}
    ]
    assert circle.approved == []  # the held job is not approved for a failed release
    assert [j["status"] for j in circle.workflows[workflow_id] if j["type"] == "approval"] == ["on_hold"]
    (trigger,) = pagerduty.events
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == "sluice/shop/api"
    assert "api 2.0.372 failed" in trigger["payload"]["summary"]
    assert len(slack.messages) == 1
    message = slack.messages[0]
    assert "api 2.0.372 failed and was rolled back" in message["text"]
    assert "*errors* 0.3" in str(message["blocks"]) and "FAIL" in str(message["blocks"])

    shown = shown_deliveries(rid)
    assert set(shown) == {"cleanup-failed", "slack", "pager"}
    assert all(d["state"] == "delivered" for d in shown.values()), shown
    assert [a["status"] for a in shown["pager"]["attempts"]] == [503, 202]
    assert shown["cleanup-failed"]["target"] == f"{circle.base}/project/{SLUG}/pipeline"
