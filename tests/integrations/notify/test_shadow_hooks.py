"""Hooks of a shadow release, sent to local servers that speak Slack's and PagerDuty's APIs: marked
`shadow: true` and "[shadow]" in the text, PagerDuty on its own alert (a shadow success must not
resolve a real release's page), and no CircleCI call (approving a held job is an effect)."""

from __future__ import annotations

import time
import uuid

import pytest

from app.context import Context
from app.core.models import CIContext, Release
from app.release.intake import start_release
from integrations.notify.teams import build_card
from tests.support.ci import SLUG, get
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty, FakeSlack
from tests.support.fakes import FakePrometheus, FakeRouter
from workers.deliver import deliver
from workers.tick import tick

pytestmark = pytest.mark.integration


def finish(ctx: Context, rid: str, timeout: float = 8.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
    raise AssertionError("release did not finish")


def shadow_release(ctx: Context, version: str, mode: str | None = "shadow") -> Release:
    ci = CIContext(provider="circleci", project_slug=SLUG, workflow_id=str(uuid.uuid4()))
    return finish(ctx, start_release(ctx, "api", version, ci=ci, mode=mode).release.id)


def test_a_shadow_failure_pages_apart_and_says_shadow_everywhere(
    ctx: Context, slack: FakeSlack, pagerduty: FakePagerDuty, circle: FakeCircleCI, prom: FakePrometheus,
    router: FakeRouter,
) -> None:  # fmt: skip
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    rel = shadow_release(ctx, "2.0.371")
    assert rel.state == "failed" and router.calls == []
    planned = {d.hook for d in ctx.store.deliveries(rel.hooks)}
    assert planned == {"slack", "pager"}  # cleanup-failed (a CircleCI pipeline) is an effect: not planned
    for hook in ("slack", "pager"):
        assert deliver(ctx, f"{rel.id}:failed:{hook}").startswith("delivered")
    assert circle.requests == []

    msg = slack.messages[0]
    assert msg["shadow"] is True
    assert msg["text"].startswith(":x: [shadow] api 2.0.371 failed") and "traffic was not moved" in msg["text"]
    assert "rolled back" not in msg["text"]
    (page,) = pagerduty.events
    assert page["event_action"] == "trigger" and page["dedup_key"] == "sluice/shop/api/shadow"
    assert page["payload"]["summary"].startswith("[shadow] ")
    assert page["payload"]["custom_details"]["shadow"] is True


def test_a_shadow_success_does_not_resolve_a_real_page(
    ctx: Context, pagerduty: FakePagerDuty, prom: FakePrometheus
) -> None:
    prom.serve("2.0.371", 2000, errors=600)
    real = shadow_release(ctx, "2.0.371", mode=None)  # a live release: fails, pages sluice/shop/api
    assert real.mode == "live" and real.state == "failed"
    deliver(ctx, f"{real.id}:failed:pager")
    good = shadow_release(ctx, "2.0.372")
    assert good.state == "succeeded"
    assert deliver(ctx, f"{good.id}:succeeded:pager").startswith("delivered")
    trigger, resolve = pagerduty.events
    assert trigger["dedup_key"] == "sluice/shop/api"
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == "sluice/shop/api/shadow"


def test_teams_card_of_a_shadow_release_is_marked() -> None:
    fields = {
        "release_id": "r-1",
        "application": "shop",
        "service": "api",
        "source_version": "2.0.0",
        "target_version": "2.0.1",
        "state": "succeeded",
        "policy": "quick",
        "step": 3,
        "reason": "every step passed",
        "mode": "shadow",
    }
    card = build_card("succeeded", fields, [], None)
    assert card["shadow"] is True
    body = card["attachments"][0]["content"]["body"]
    assert body[0]["text"] == "[shadow] api 2.0.1 passed"
    assert {"title": "Mode", "value": "shadow: judged only, traffic was not moved"} in body[1]["facts"]
    live = build_card("succeeded", {**fields, "mode": "live"}, [], None)
    assert "shadow" not in live and live["attachments"][0]["content"]["body"][0]["text"] == "api 2.0.1 promoted"
