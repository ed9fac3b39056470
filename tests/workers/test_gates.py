"""Gates through the real tick (workers/tick.py) on a real Redis: webhook gates answered by a local
HTTP server that verifies Sluice's signature, and manual gates approved from the API (a Flask test
client of the real app) and from Slack's button (a signed interaction request, as Slack sends it).

The router is our in-memory Router (tests/support/fakes.py); Prometheus a local HTTP server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from app.analysis.replay import render, replay
from app.context import Context, set_context
from app.release.intake import start_release
from app.web import create_app
from tests.support.fakes import FakePrometheus, FakeRouter, Reply, WebhookReceiver
from tests.support.gate_server import GateServer
from tests.support.gates import (
    GATE_SECRET,
    SLACK_SECRET,
    events,
    get,
    make_ctx,
    tick_until,
    wait_for_approval,
)
from tests.support.web import AUTH, TOKEN
from workers.deliver import deliver
from workers.tick import tick

pytestmark = pytest.mark.integration


@pytest.fixture
def gate() -> Iterator[GateServer]:
    server = GateServer(GATE_SECRET).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ctx(
    redis_url: str,
    prom: FakePrometheus,
    router: FakeRouter,
    gate: GateServer,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Context]:
    monkeypatch.setenv("GATE_SECRET", GATE_SECRET)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + "/services/T000/B000/slack-url-secret-1234")
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    for candidate, stable in (("1.1.0", "1.0.0"), ("2.1.0", "2.0.0"), ("5.1.0", "5.0.0")):
        prom.healthy(candidate, stable)
    context = make_ctx(redis_url, prom, router, gate.url)
    set_context(context)
    yield context
    set_context(None)
    context.prometheus.close()
    context.store.r.close()


# --- webhook gates -----------------------------------------------------------------------------------


def test_webhook_gate_that_says_go_lets_the_step_start(ctx: Context, gate: GateServer, router: FakeRouter) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.terminal)

    assert rel.state == "succeeded", rel.reason
    assert router.applied_weights("web")[0] == {"1.0.0": 90, "1.1.0": 10}
    # Asked once, before any weight moved, signed (the server verified it), about this release and step.
    assert len(gate.requests) == 1 and gate.verified == [True]
    sent = gate.payloads()[0]
    assert sent["gate"] == "freeze" and sent["point"] == "step-1" and sent["step"] == {"number": 1, "weight": 10}
    assert sent["release"]["release_id"] == rid and sent["release"]["target_version"] == "1.1.0"
    assert gate.requests[0].headers["Sluice-Event"] == "gate"
    assert gate.requests[0].headers["Sluice-Delivery"] == f"{rid}:step-1:freeze"
    said = events(ctx, rid, "gate_go")
    assert len(said) == 1 and said[0].message.startswith("gate 'freeze' said go: answered 200")
    first_weights = next(e for e in ctx.store.events(rid) if e.type == "weights_set")
    assert said[0].at <= first_weights.at


def test_webhook_gate_403_fails_the_release_with_its_reason(ctx: Context, gate: GateServer, router: FakeRouter) -> None:
    gate.reply(Reply(403, {"Content-Type": "application/json"}, b'{"reason": "change freeze until Monday"}'))
    rid = start_release(ctx, "api", "2.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.terminal)

    assert rel.state == "failed"
    assert rel.reason == "gate 'freeze' said no-go before step 2: answered 403: change freeze until Monday"
    # The first step ran; the gated one never did, and traffic is back on stable.
    assert router.applied_weights("api") == [{"2.0.0": 90, "2.1.0": 10}, {"2.0.0": 100}]
    assert len(gate.requests) == 1 and gate.verified == [True]
    assert [e.type for e in events(ctx, rid) if e.type.startswith("gate_")] == ["gate_no_go"]
    replayed = replay(ctx, rid)  # decided again on the recorded answer
    assert replayed.final.state == "failed" and replayed.final.reason == rel.reason


def test_explicit_go_false_is_a_no_go(ctx: Context, gate: GateServer, router: FakeRouter) -> None:
    gate.reply(Reply(200, {"Content-Type": "application/json"}, b'{"go": false, "reason": "incident open"}'))
    rid = start_release(ctx, "web", "1.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert rel.state == "failed" and "go: false: incident open" in (rel.reason or "")
    assert router.applied_weights("web") == [{"1.0.0": 100}]  # no candidate weight, ever


def test_a_gate_that_cannot_verify_the_signature_says_no(
    ctx: Context, gate: GateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_SECRET", "not-the-secret-the-gate-knows")
    rid = start_release(ctx, "web", "1.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert gate.verified == [False]
    assert rel.state == "failed" and rel.reason is not None and "answered 401: bad signature" in rel.reason
    assert "not-the-secret" not in json.dumps([e.model_dump() for e in ctx.store.events(rid)])


def test_unreachable_gate_holds_then_fails_at_its_timeout(
    redis_url: str, prom: FakePrometheus, router: FakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_SECRET", GATE_SECRET)
    closed = GateServer(GATE_SECRET).start()
    closed.stop()  # nothing listens on its port any more
    ctx = make_ctx(redis_url, prom, router, closed.url)
    rid = start_release(ctx, "web", "1.1.0").release.id

    held = tick_until(ctx, rid, lambda r: (r.reason or "").startswith("waiting for gate 'freeze'"))
    assert held.state == "pending" and "unreachable" in (held.reason or "")
    rel = tick_until(ctx, rid, lambda r: r.terminal)

    assert rel.state == "failed"
    assert rel.reason is not None and "gate 'freeze' unreachable for" in rel.reason
    assert "(unreachable_timeout)" in rel.reason and "could not reach freeze" in rel.reason
    attempts = events(ctx, rid, "gate_unreachable")
    assert len(attempts) >= 2  # asked again (with backoff) while holding
    # Backoff: each attempt waited at least 1s, 2s ... after the one before (the interval is 0.5s).
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(g >= 2.0**i * 0.999 for i, g in enumerate(gaps)), gaps
    assert router.applied_weights("web") == [{"1.0.0": 100}]
    replayed = replay(ctx, rid)
    assert replayed.final.state == "failed" and replayed.differences == [], render(replayed, verbose=True)
    ctx.prometheus.close()
    ctx.store.r.close()


def test_unreachable_gate_with_on_unreachable_fail_fails_at_once(
    redis_url: str, prom: FakePrometheus, router: FakeRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_SECRET", GATE_SECRET)
    closed = GateServer(GATE_SECRET).start()
    closed.stop()
    ctx = make_ctx(redis_url, prom, router, closed.url, unreachable="fail")
    rid = start_release(ctx, "web", "1.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert rel.state == "failed" and "gate 'freeze' is unreachable before step 1" in (rel.reason or "")
    assert len(events(ctx, rid, "gate_unreachable")) == 1
    ctx.prometheus.close()
    ctx.store.r.close()


def test_429_retry_after_is_honoured_before_asking_again(ctx: Context, gate: GateServer) -> None:
    gate.reply(Reply(429, {"Retry-After": "2"}, b"slow down"))
    rid = start_release(ctx, "web", "1.1.0").release.id
    held = tick_until(ctx, rid, lambda r: (r.reason or "").startswith("waiting for gate"))
    assert "answered 429" in (held.reason or "")
    rel = tick_until(ctx, rid, lambda r: r.state != "pending")

    assert rel.state == "running"
    assert len(gate.requests) == 2 and gate.verified == [True, True]
    assert gate.requests[1].at - gate.requests[0].at >= 2.0  # not before Retry-After
    retry = events(ctx, rid, "gate_unreachable")
    assert len(retry) == 1 and "next attempt in 2s" in retry[0].message


# --- manual gates --------------------------------------------------------------------------------------


def test_manual_gate_waits_and_is_approved_from_the_api(ctx: Context, router: FakeRouter) -> None:
    rid = wait_for_approval(ctx)
    for _ in range(3):  # it keeps waiting, and says so once
        tick(ctx, rid, get(ctx, rid).seq)
    assert get(ctx, rid).state == "running"
    assert [e.message for e in events(ctx, rid, "hold")].count("waiting for approval: qa") == 1

    client = create_app().test_client()
    refused = client.post(f"/api/v1/releases/{rid}/approve", json={"by": "alice"})
    assert refused.status_code == 401
    assert events(ctx, rid, "approved") == []

    resp = client.post(f"/api/v1/releases/{rid}/approve", json={"by": "alice"}, headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "approved" and body["approved_by"] == "api:alice" and body["gate"] == "qa"
    again = client.post(f"/api/v1/releases/{rid}/approve", json={"by": "bob"}, headers=AUTH).get_json()
    assert again["status"] == "already_approved" and again["message"] == "gate 'qa' was already approved by api:alice"

    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert rel.state == "succeeded"
    assert router.weights["admin"] == {"5.0.0": 0, "5.1.0": 100}
    approved = events(ctx, rid, "approved")
    assert len(approved) == 1
    assert approved[0].message == "gate 'qa' approved by api:alice (via api) before promotion"
    assert approved[0].data == {"gate": "qa", "point": "promotion", "by": "api:alice", "via": "api"}

    # A replay decides on the recorded approval: the same decisions, the same outcome.
    replayed = replay(ctx, rid)
    assert replayed.final.state == "succeeded" and replayed.differences == [], render(replayed, verbose=True)

    late = client.post(f"/api/v1/releases/{rid}/approve", headers=AUTH)  # a click after the fact: still idempotent
    assert late.status_code == 200 and late.get_json()["status"] == "already_approved"
    assert len(events(ctx, rid, "approved")) == 1


def test_approve_refuses_what_is_not_waiting_and_bad_input(ctx: Context) -> None:
    client = create_app().test_client()
    assert client.post("/api/v1/releases/r-nope/approve", headers=AUTH).status_code == 404
    rid = start_release(ctx, "admin", "5.1.0").release.id
    resp = client.post(f"/api/v1/releases/{rid}/approve", headers=AUTH)
    assert resp.status_code == 409 and "not waiting for approval" in resp.get_json()["error"]
    bad = client.post(f"/api/v1/releases/{rid}/approve", json={"by": "x\ny"}, headers=AUTH)
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "by"
    other = client.post(f"/api/v1/releases/{rid}/approve", json={"gate": "security"}, headers=AUTH)
    assert other.status_code == 404 and "no manual gate 'security'" in other.get_json()["error"]
    assert events(ctx, rid, "approved") == []


# --- Slack ----------------------------------------------------------------------------------------------


def slack_request(body: bytes, timestamp: int, secret: str = SLACK_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={mac}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(
    value: str, action: str = "sluice_approve", response_url: str | None = None, user: str = "U024BE7LH"
) -> bytes:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T000"},
        "actions": [{"action_id": action, "block_id": "sluice_gate", "value": value, "type": "button"}],
    }
    if response_url:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


def delivered_slack_message(ctx: Context, rid: str, receiver: WebhookReceiver) -> dict[str, Any]:
    """Deliver the release's approval request through the real Slack hook and return what Slack got."""
    asks = [d for d in ctx.store.deliveries(get(ctx, rid).hooks) if d.event == "approval_requested"]
    assert len(asks) == 1, [d.id for d in asks]
    assert asks[0].payload["gate"] == {"point": "promotion", "gate": "qa"}
    assert deliver(ctx, asks[0].id).startswith("delivered")
    return json.loads(receiver.requests[-1].body)


def test_slack_button_approves_with_a_valid_signature_only(
    ctx: Context, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = wait_for_approval(ctx)
    message = delivered_slack_message(ctx, rid, receiver)
    assert "waiting for approval: qa" in message["text"]
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == ["sluice_approve", "sluice_abort"]
    value = buttons[0]["value"]  # what Slack sends back when the button is clicked

    client = create_app().test_client()
    body = click(value)
    now = int(time.time())
    wrong = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, now, "wrong-secret"))
    assert wrong.status_code == 401 and "X-Slack-Signature does not match" in wrong.get_json()["error"]
    old = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, now - 301))
    assert old.status_code == 401 and "replay" in old.get_json()["error"]
    tampered = click(value.replace("qa", "qb"))
    forged = client.post("/hooks/slack/interactive", data=tampered, headers=slack_request(body, now))
    assert forged.status_code == 401
    unsigned = client.post("/hooks/slack/interactive", data=body)
    assert unsigned.status_code == 401
    # Nothing changed: the release still waits, nobody approved.
    assert events(ctx, rid, "approved") == [] and get(ctx, rid).reason == "waiting for approval: qa"
    tick(ctx, rid, get(ctx, rid).seq)
    assert get(ctx, rid).state == "running"

    monkeypatch.setenv("SLACK_RESPONSE_URL_HOSTS", receiver.url.removeprefix("http://"))
    body = click(value, response_url=receiver.url + "/actions/T000/1/xyz")
    ok = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, int(time.time())))
    assert ok.status_code == 200
    assert ok.get_json()["text"] == f"Approved: gate qa of {rid}, by slack:U024BE7LH (alice)."
    assert json.loads(receiver.requests[-1].body)["text"] == ok.get_json()["text"]  # told through response_url

    second = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, int(time.time())))
    assert second.get_json()["text"] == f"Gate qa of {rid} was already approved by slack:U024BE7LH (alice)."

    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert rel.state == "succeeded"
    approved = events(ctx, rid, "approved")
    assert len(approved) == 1 and approved[0].data["by"] == "slack:U024BE7LH (alice)"
    assert approved[0].data["via"] == "slack"


def test_slack_abort_button_aborts_and_names_who(ctx: Context, receiver: WebhookReceiver, router: FakeRouter) -> None:
    rid = wait_for_approval(ctx)
    message = delivered_slack_message(ctx, rid, receiver)
    value = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][1]["value"]
    client = create_app().test_client()
    body = click(value, action="sluice_abort")
    resp = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, int(time.time())))
    assert resp.status_code == 200 and resp.get_json()["text"].startswith(f"Aborted {rid}")
    rel = get(ctx, rid)
    assert rel.state == "aborted" and rel.reason == "abort by slack:U024BE7LH (alice)"
    assert router.weights["admin"] == {"5.0.0": 100, "5.1.0": 0}
    late = click(value)
    again = client.post("/hooks/slack/interactive", data=late, headers=slack_request(late, int(time.time())))
    assert again.status_code == 200 and "is aborted: there is nothing to approve" in again.get_json()["text"]


def test_slack_clicks_count_only_from_the_approvers_list(ctx: Context, receiver: WebhookReceiver) -> None:
    """Anyone in the workspace sees the message; only `slack.approvers` may approve or abort from it."""
    rid = wait_for_approval(ctx)
    buttons = next(b for b in delivered_slack_message(ctx, rid, receiver)["blocks"] if b["type"] == "actions")
    client = create_app().test_client()
    for action, element in (("sluice_approve", 0), ("sluice_abort", 1)):
        body = click(buttons["elements"][element]["value"], action=action, user="U0STRANGER")
        resp = client.post("/hooks/slack/interactive", data=body, headers=slack_request(body, int(time.time())))
        assert resp.status_code == 200 and "not in Sluice's `slack.approvers`" in resp.get_json()["text"]
    assert events(ctx, rid, "approved") == [] and get(ctx, rid).state == "running"
    assert ctx.store.people.audit_log()[0]["action"] == "denied"


def test_slack_interactivity_is_off_without_a_signing_secret(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    body = click("{}")
    resp = (
        create_app()
        .test_client()
        .post("/hooks/slack/interactive", data=body, headers=slack_request(body, int(time.time())))
    )
    assert resp.status_code == 401 and "SLACK_SIGNING_SECRET" in resp.get_json()["error"]


# --- CLI --------------------------------------------------------------------------------------------------


@pytest.fixture
def web(ctx: Context) -> Iterator[str]:
    """The real web app over real HTTP (werkzeug in a thread), for the CLI's client."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_cli_approve_records_the_local_user(ctx: Context, web: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from app.cli.main import main

    monkeypatch.setenv("USER", "carol")  # getpass.getuser() reads it first
    monkeypatch.setenv("LOGNAME", "carol")
    rid = wait_for_approval(ctx)
    out = CliRunner().invoke(main, ["approve", rid, "--url", web])
    assert out.exit_code == 0, out.output
    assert "gate 'qa' approved by api:carol" in out.output
    again = CliRunner().invoke(main, ["approve", rid, "--url", web])
    assert again.exit_code == 0 and "already approved by api:carol" in again.output
    assert [e.data["by"] for e in events(ctx, rid, "approved")] == ["api:carol"]

    other = start_release(ctx, "web", "1.1.0").release.id  # not waiting for any approval
    refused = CliRunner().invoke(main, ["approve", other, "--url", web])
    assert refused.exit_code == 1 and "409" in refused.output and "not waiting for approval" in refused.output
