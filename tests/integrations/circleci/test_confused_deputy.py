"""Sluice's CircleCI token acts only on the project configured for the service: an announcement that
names someone else's workflow (or project) must not get that workflow cancelled or approved, nor a
pipeline triggered there. Through the local CircleCI server, which knows which project each workflow
belongs to (GET /workflow/{id}), as CircleCI does."""

from __future__ import annotations

import uuid

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import CIContext
from app.release.intake import start_release
from tests.integrations.notify.test_hook_senders import finish, make_ctx
from tests.support.ci import SLUG, ci_config, get
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty
from tests.support.fakes import FakePrometheus, FakeRouter
from workers.deliver import deliver

pytestmark = pytest.mark.integration

VICTIM = "gh/other-team/payments"


def _evil(workflow_id: str, slug: str = VICTIM) -> CIContext:
    return CIContext(provider="circleci", project_slug=slug, workflow_id=workflow_id)


def test_a_superseded_release_does_not_cancel_another_projects_workflow(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(redis_url, prom, circle, pagerduty, "  - {name: cancel, type: circleci_cancel_workflow}\n")
    theirs = str(uuid.uuid4())
    circle.add_workflow(theirs, [("deploy-payments", "approval", "on_hold")], project_slug=VICTIM)
    first = start_release(ctx, "api", "2.0.371", ci=_evil(theirs)).release.id
    start_release(ctx, "api", "2.0.372")  # supersedes the first: its `aborted` hooks fire
    finish(ctx, first)
    assert get(ctx, first).state == "aborted"
    out = deliver(ctx, f"{first}:aborted:cancel")
    assert circle.cancelled == []
    assert VICTIM in out and SLUG in out and "not retried" in out
    # Sluice asked CircleCI whose workflow it was, and did nothing else.
    assert [(r.method, r.path) for r in circle.requests] == [("GET", f"/api/v2/workflow/{theirs}")]
    ctx.store.r.close()


def test_a_workflow_of_the_configured_project_is_still_cancelled(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(redis_url, prom, circle, pagerduty, "  - {name: cancel, type: circleci_cancel_workflow}\n")
    ours = str(uuid.uuid4())
    circle.add_workflow(ours, [("released-by-sluice", "approval", "on_hold")], project_slug="github/acme/shop")
    first = start_release(ctx, "api", "2.0.371", ci=_evil(ours, SLUG)).release.id
    start_release(ctx, "api", "2.0.372")
    finish(ctx, first)
    assert deliver(ctx, f"{first}:aborted:cancel").startswith("delivered")
    assert circle.cancelled == [ours]
    ctx.store.r.close()


def test_a_held_job_of_another_project_is_not_approved(ctx: Context, circle: FakeCircleCI) -> None:
    theirs = str(uuid.uuid4())
    circle.add_workflow(theirs, [("hold-payments", "approval", "on_hold")], project_slug=VICTIM)
    rel = finish(ctx, start_release(ctx, "api", "2.0.371", ci=_evil(theirs)).release.id)
    assert rel.state == "succeeded"
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert circle.approved == []
    assert VICTIM in out and "not retried" in out
    assert [r.path for r in circle.requests] == [f"/api/v2/workflow/{theirs}"]


def test_a_pipeline_is_triggered_only_in_the_configured_project(ctx: Context, circle: FakeCircleCI) -> None:
    rel = finish(ctx, start_release(ctx, "api", "2.0.371", ci=_evil(str(uuid.uuid4()))).release.id)
    assert deliver(ctx, f"{rel.id}:succeeded:cleanup-old").startswith("delivered")
    assert [p["slug"] for p in circle.pipelines] == [SLUG]


def test_no_configured_project_means_no_call(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    """A service no `circleci.projects` entry deploys (and whose hook names no project): nothing is
    sent, and the delivery says how to fix it."""
    config = parse_config(
        ci_config(circle, pagerduty).replace("{job: deploy, service: api,", "{job: deploy, service: cart,")
    )
    ctx = Context(config=config, redis_url=redis_url, prometheus_url=prom.url)
    ctx._routers["shop"] = FakeRouter()
    theirs = str(uuid.uuid4())
    circle.add_workflow(theirs, [("hold", "approval", "on_hold")], project_slug=VICTIM)
    rel = finish(ctx, start_release(ctx, "api", "2.0.371", ci=_evil(theirs)).release.id)
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert "project_slug" in out and "circleci.projects" in out
    assert deliver(ctx, f"{rel.id}:succeeded:cleanup-old").endswith("not retried")
    assert circle.requests == [] and circle.pipelines == []
    ctx.store.r.close()
