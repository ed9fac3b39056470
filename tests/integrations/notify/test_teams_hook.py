"""The Microsoft Teams hook against a local server that speaks a Workflows webhook: the Adaptive
Card it posts, any 2xx as success, 429 + Retry-After and 5xx retried, 413 not retried, and the URL
(a secret) never in anything recorded or shown."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.models import CheckResult, Release
from app.release.intake import start_release
from app.store import PREFIX
from integrations.notify.teams import CARD_CONTENT_TYPE, MESSAGE_LIMIT, REASON_LIMIT, build_card, message_size, plain
from tests.support.ci import PUBLIC_URL, ci_config, get
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty, Fault, _Fake, _reply
from tests.support.fakes import FakePrometheus, FakeRouter, Recorded
from tests.support.web import read_api
from workers.deliver import deliver
from workers.tick import tick

pytestmark = pytest.mark.integration

SIG = "Zm9vYmFyLXRlYW1zLXdvcmtmbG93LXNpZ25hdHVyZQ"


class FakeTeams(_Fake):
    """A Workflows "When a Teams webhook request is received" trigger: 202 for a message with one
    Adaptive Card (version <= 1.5), 400 for anything else, 401 for a wrong signature, 413 over 28 KB."""

    WORKFLOW = "6a1e2f3b4c5d6e7f8a9b0c1d2e3f4a5b"
    PATH = f"/workflows/{WORKFLOW}/triggers/manual/paths/invoke"

    def __init__(self) -> None:
        super().__init__()
        self.webhook_url = (
            f"{self.url}{self.PATH}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
        )
        self.cards: list[dict[str, Any]] = []

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        path, _, query = rec.path.partition("?")
        if rec.method != "POST" or path != self.PATH:
            return _reply(404, {"error": {"code": "TriggerNotFound", "message": "not found"}})
        if f"sig={SIG}" not in query.split("&"):
            return _reply(401, {"error": {"code": "DirectApiAuthorizationRequired", "message": "bad signature"}})
        if len(rec.body) > MESSAGE_LIMIT:
            return _reply(413, {"error": {"code": "MessageTooLarge", "message": "Message is too large"}})
        try:
            body = json.loads(rec.body)
            [attachment] = body["attachments"]
            card = attachment["content"]
            assert body["type"] == "message" and attachment["contentType"] == CARD_CONTENT_TYPE
            assert card["type"] == "AdaptiveCard" and tuple(map(int, card["version"].split("."))) <= (1, 5)
            assert isinstance(card["body"], list) and card["body"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return _reply(400, {"error": {"code": "InvalidRequestContent", "message": "invalid message"}})
        self.cards.append(card)
        return 202, {}, b""


@pytest.fixture
def teams(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTeams]:
    server = FakeTeams().start()
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", server.webhook_url)
    try:
        yield server
    finally:
        server.stop()


TEAMS_HOOK = "  - {name: teams, type: teams, on: [succeeded, failed], timeout: 2s, max_attempts: 4}\n"


@pytest.fixture
def tctx(
    redis_url: str,
    prom: FakePrometheus,
    circle: FakeCircleCI,
    pagerduty: FakePagerDuty,
    env: pytest.MonkeyPatch,
    teams: FakeTeams,
) -> Iterator[Context]:
    ctx = Context(
        config=parse_config(ci_config(circle, pagerduty, TEAMS_HOOK)), redis_url=redis_url, prometheus_url=prom.url
    )
    ctx._routers["shop"] = FakeRouter()
    set_context(ctx)
    yield ctx
    set_context(None)
    ctx.prometheus.close()
    ctx.store.r.close()


def finish(ctx: Context, version: str = "2.0.371") -> Release:
    rid = start_release(ctx, "api", version).release.id
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
    raise AssertionError("release did not finish")


def attempts(ctx: Context, did: str) -> list[dict[str, Any]]:
    d = ctx.store.get_delivery(did)
    assert d is not None
    return [a.model_dump() for a in d.attempts]


def test_card_has_service_versions_state_reason_checks_and_link(
    tctx: Context, teams: FakeTeams, prom: FakePrometheus
) -> None:
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    rel = finish(tctx)
    assert rel.state == "failed"
    assert deliver(tctx, f"{rel.id}:failed:teams").startswith("delivered")
    [card] = teams.cards
    assert card["version"] == "1.4"
    title, factset, checks = card["body"]
    assert title["text"] == "api 2.0.371 failed and was rolled back" and title["color"] == "Attention"
    facts = {f["title"]: f["value"] for f in factset["facts"]}
    assert facts["Service"] == "api (application shop)"
    assert facts["Versions"] == f"{rel.source_version} → 2.0.371"
    assert facts["State"] == "failed" and facts["Reason"] == plain(rel.reason)  # shown as written, not as Markdown
    assert "FAIL errors: 0.3" in checks["text"]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": f"Release {rel.id}", "url": f"{PUBLIC_URL}/api/v1/releases/{rel.id}"}
    ]
    assert teams.requests[0].headers["Content-Type"] == "application/json"
    d = tctx.store.get_delivery(f"{rel.id}:failed:teams")
    assert d is not None and d.target == "teams workflows webhook ($TEAMS_WEBHOOK_URL)"
    assert d.attempts[0].status == 202


def test_no_link_without_a_public_url(tctx: Context, teams: FakeTeams, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_PUBLIC_URL")
    rel = finish(tctx)
    assert deliver(tctx, f"{rel.id}:succeeded:teams").startswith("delivered")
    [card] = teams.cards
    assert "actions" not in card and card["body"][0]["color"] == "Good"


def test_429_waits_for_retry_after_then_succeeds(tctx: Context, teams: FakeTeams) -> None:
    rel = finish(tctx)
    did = f"{rel.id}:succeeded:teams"
    teams.fail_next(Fault(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "3"}))
    before = time.time()
    assert deliver(tctx, did).startswith("retry in 3.0s")
    score = tctx.store.r.zscore(PREFIX + "due", "hook:" + did)
    assert score is not None and before + 3 <= score <= time.time() + 3
    assert deliver(tctx, did).startswith("delivered")
    assert [a["status"] for a in attempts(tctx, did)] == [429, 202]
    assert len(teams.cards) == 1


def test_500_is_retried_and_413_is_not(tctx: Context, teams: FakeTeams) -> None:
    rel = finish(tctx)
    did = f"{rel.id}:succeeded:teams"
    teams.fail_next(Fault(500, b"Internal Server Error"))
    assert deliver(tctx, did).startswith("retry")
    assert deliver(tctx, did).startswith("delivered")
    assert [a["status"] for a in attempts(tctx, did)] == [500, 202]
    rel = finish(tctx, version="2.0.372")
    did = f"{rel.id}:succeeded:teams"
    teams.fail_next(Fault(413, {"error": {"code": "MessageTooLarge", "message": "Message is too large"}}))
    assert (
        deliver(tctx, did)
        == 'teams answered 413: {"code": "MessageTooLarge", "message": "Message is too large"}; not retried'
    )


def test_the_url_is_never_recorded_or_shown(tctx: Context, teams: FakeTeams) -> None:
    rel = finish(tctx)
    did = f"{rel.id}:succeeded:teams"
    teams.fail_next(Fault(500, f"upstream error for {teams.webhook_url}".encode()))
    teams.fail_next(Fault(400, {"error": {"message": f"bad request to {teams.PATH}?sig={SIG}"}}))
    deliver(tctx, did)
    deliver(tctx, did)
    assert [a["status"] for a in attempts(tctx, did)] == [500, 400]
    for key in tctx.store.r.scan_iter(PREFIX + "*"):
        if tctx.store.r.type(key) == b"string":
            raw = tctx.store.r.get(key) or b""
            assert SIG.encode() not in raw and FakeTeams.WORKFLOW.encode() not in raw, key
    shown = read_api(f"/api/v1/releases/{rel.id}").get_data(as_text=True)
    assert SIG not in shown and FakeTeams.WORKFLOW not in shown and "[redacted]" in shown


def test_missing_url_fails_without_a_call(tctx: Context, teams: FakeTeams, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAMS_WEBHOOK_URL")
    rel = finish(tctx)
    assert "TEAMS_WEBHOOK_URL" in deliver(tctx, f"{rel.id}:succeeded:teams")
    assert teams.requests == []


def test_the_card_stays_small() -> None:
    release = {
        "release_id": str(uuid.uuid4()),
        "application": "shop",
        "service": "api",
        "source_version": "1.0.0",
        "target_version": "1.0.1",
        "state": "failed",
        "policy": "canary",
        "step": 3,
        "reason": "x" * 50_000,
    }
    checks = [
        CheckResult(name=f"check-{i}", step=0, at=1.0, value=0.5, threshold="max " + "9" * 500, verdict="fail")
        for i in range(40)
    ]
    message = build_card("failed", release, checks, f"{PUBLIC_URL}/api/v1/releases/{release['release_id']}")
    assert message_size(message) < 8 * 1024
    facts = {f["title"]: f["value"] for f in message["attachments"][0]["content"]["body"][1]["facts"]}
    assert len(facts["Reason"]) == REASON_LIMIT and facts["Reason"].endswith("…")
    assert message["attachments"][0]["content"]["body"][2]["text"].endswith("… and 32 more")
