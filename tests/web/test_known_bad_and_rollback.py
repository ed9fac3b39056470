"""Known-bad versions and instant rollback through the web API, on a real Redis (app/core/known_bad.py,
app/release/rollback.py, app/web/services.py). The router is the in-memory FakeRouter; the same flows on
real HAProxy are in tests/e2e/test_rollback_haproxy.py."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.context import Context
from app.core.models import Release
from app.web import create_app
from tests.support.fakes import FakePrometheus, FakeRouter, WebhookReceiver, config_text, shop_context
from tests.support.web import logged_in
from workers.deliver import deliver
from workers.tick import tick

pytestmark = pytest.mark.integration

TOKEN = "api-token-for-known-bad-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFUSAL = re.compile(
    r"^1\.1\.0 failed on errors-vs-stable, errors at step 1, \d{4}-\d\d-\d\d \d\d:\d\d; "
    r"send force: true to release it again$"
)


@pytest.fixture
def ctx(
    redis_url: str, prom: FakePrometheus, router: FakeRouter, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-value-77bb")
    hooks = (
        f"  - {{name: ci, type: webhook, on: [failed, succeeded, rollback], url: {receiver.url},"
        " secret_env: HOOK_SECRET}\n"
    )
    with shop_context(config_text(hooks), redis_url, prom, router) as context:
        yield context


@pytest.fixture
def client(ctx: Context) -> FlaskClient:
    return logged_in(create_app().test_client(), TOKEN)


def error(resp: TestResponse, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert isinstance(body, dict) and body["error"], body
    return body


def deploy(client: FlaskClient, version: str = "1.1.0", **extra: Any) -> TestResponse:
    return client.post("/hooks/deploy", json={"service": "web", "version": version, **extra}, headers=AUTH)


def finish(ctx: Context, rid: str, timeout: float = 10.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rel = ctx.store.get(rid)
        assert rel is not None
        if rel.terminal:
            return rel
        tick(ctx, rid, rel.seq)
        time.sleep(0.05)
    raise AssertionError(f"release {rid} did not finish")


def failed_release(client: FlaskClient, ctx: Context, prom: FakePrometheus) -> str:
    prom.serve("1.0.0", 18000)
    prom.serve("1.1.0", 2000, errors=1000)  # half of its answers are 500s
    rid = deploy(client).get_json()["release"]
    rel = finish(ctx, rid)
    assert rel.state == "failed", rel.reason
    return rid


def promoted(client: FlaskClient, ctx: Context, version: str = "1.1.0") -> str:
    rid = deploy(client, version).get_json()["release"]
    tick(ctx, rid, 0)
    resp = client.post(f"/api/v1/releases/{rid}/promote", headers=AUTH)
    assert resp.get_json()["state"] == "succeeded", resp.get_json()
    return rid


def known_bad(client: FlaskClient) -> list[dict[str, Any]]:
    resp = client.get("/api/v1/services/web/known-bad")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["known_bad"]


# --- known-bad versions ------------------------------------------------------------------------------


def test_a_failed_version_is_refused_then_released_when_forced(
    client: FlaskClient, ctx: Context, prom: FakePrometheus
) -> None:
    rid = failed_release(client, ctx, prom)

    body = error(deploy(client), 409)  # the CI retry
    assert REFUSAL.match(body["error"]), body["error"]
    assert body["detail"]["release"] == rid and body["detail"]["status_url"] == f"/api/v1/releases/{rid}"
    assert body["detail"]["known_bad"]["version"] == "1.1.0"
    assert [(k["version"], k["release_id"]) for k in known_bad(client)] == [("1.1.0", rid)]
    assert ctx.store.list_releases(service="web")[1] == 1  # nothing new was started

    forced = deploy(client, force=True, by="alice", reason="the errors were a flaky dependency")
    assert forced.status_code == 202, forced.get_json()
    new = forced.get_json()["release"]
    assert new != rid
    created = ctx.store.events(new)[0]
    assert "forced by api:alice (the errors were a flaky dependency)" in created.message
    assert created.data["forced"]["known_bad"]["release_id"] == rid
    assert ctx.store.get(new).actor == "api:alice"  # type: ignore[union-attr]
    assert known_bad(client) == []  # forcing it clears the entry...
    again = deploy(client)  # ...so the next retry is a duplicate of the forced release, not refused
    assert again.status_code == 200 and again.get_json()["release"] == new


def test_force_while_the_version_is_in_flight_is_a_duplicate(client: FlaskClient, ctx: Context) -> None:
    rid = deploy(client).get_json()["release"]
    resp = deploy(client, force=True, by="bob")
    assert resp.status_code == 200 and resp.get_json()["release"] == rid


def test_an_aborted_release_does_not_make_its_version_known_bad(client: FlaskClient, ctx: Context) -> None:
    rid = deploy(client).get_json()["release"]
    tick(ctx, rid, 0)
    assert client.post(f"/api/v1/releases/{rid}/abort", headers=AUTH).get_json()["state"] == "aborted"
    assert known_bad(client) == []
    assert deploy(client).status_code == 200  # a duplicate, as before: not refused


def test_clearing_a_known_bad_version_lets_it_be_released_again(
    client: FlaskClient, ctx: Context, prom: FakePrometheus
) -> None:
    rid = failed_release(client, ctx, prom)
    error(client.delete("/api/v1/services/web/known-bad/1.1.0"), 401)  # the read session is not enough
    error(client.delete("/api/v1/services/web/known-bad/1.1.0", headers={"Authorization": "Bearer no"}), 401)
    assert len(known_bad(client)) == 1

    resp = client.delete("/api/v1/services/web/known-bad/1.1.0", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["cleared"]["release_id"] == rid
    assert known_bad(client) == []
    assert (
        "not a known-bad version"
        in error(client.delete("/api/v1/services/web/known-bad/1.1.0", headers=AUTH), 404)["error"]
    )
    started = deploy(client)
    assert started.status_code == 202 and started.get_json()["release"] != rid


def test_known_bad_input_errors(client: FlaskClient) -> None:
    assert "no service 'nope'" in error(client.get("/api/v1/services/nope/known-bad"), 404)["error"]
    error(client.delete("/api/v1/services/web/known-bad/bad%20version", headers=AUTH), 400)
    body = error(deploy(client, force="yes"), 400)
    assert body["detail"][0]["field"] == "force"


# --- rollback ---------------------------------------------------------------------------------------------


def test_rollback_after_promotion_puts_all_traffic_back_and_is_recorded(
    client: FlaskClient, ctx: Context, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    promotion = promoted(client, ctx)
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}
    error(client.post("/api/v1/services/web/rollback"), 401)

    resp = client.post("/api/v1/services/web/rollback", json={"by": "bob", "reason": "checkout broken"}, headers=AUTH)
    assert resp.status_code == 201, resp.get_json()
    rel = resp.get_json()
    assert resp.headers["Location"] == f"/api/v1/releases/{rel['id']}"
    assert (rel["state"], rel["trigger"], rel["actor"]) == (
        "succeeded",
        "rollback",
        "api:bob",
    )  # a shared token: the typed name after its label
    assert (rel["source_version"], rel["target_version"]) == ("1.1.0", "1.0.0")
    [step] = rel["steps"]
    assert (step["weight"], step["duration"], step["requests"], step["pause"]) == (100, None, None, False)
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}
    assert [e["type"] for e in rel["events"]] == ["created", "started", "weights_set", "succeeded"]
    assert promotion in rel["events"][0]["message"]
    apps = client.get("/api/v1/applications").get_json()["applications"][0]["services"]
    assert next(s for s in apps if s["name"] == "web")["stable_version"] == "1.0.0"

    # One hook, event `rollback` (no `started`), delivered signed like any other.
    assert [d["event"] for d in rel["hook_deliveries"]] == ["rollback"]
    before = len(receiver.requests)
    assert deliver(ctx, rel["hook_deliveries"][0]["id"]).startswith("delivered")
    sent = receiver.requests[before]
    assert sent.headers["Sluice-Event"] == "rollback"
    payload = json.loads(sent.body)
    assert payload["event"] == "rollback" and payload["release"]["target_version"] == "1.0.0"

    # The version taken out is known-bad: a CI retry of it is refused.
    assert [(k["version"], k["reason"], k["release_id"]) for k in known_bad(client)] == [
        ("1.1.0", "rolled back by api:bob", rel["id"])
    ]
    refused = error(deploy(client), 409)["error"]
    assert refused.startswith("1.1.0 rolled back by api:bob, ") and refused.endswith(
        "send force: true to release it again"
    )

    # Rolling back again would put the known-bad version back: refused, saying so.
    again = error(client.post("/api/v1/services/web/rollback", headers=AUTH), 409)["error"]
    assert "previous version 1.1.0 rolled back by api:bob" in again


def test_rollback_refusals(client: FlaskClient, ctx: Context, router: FakeRouter) -> None:
    # Nothing recorded made the configured stable version stable: no previous version.
    body = error(client.post("/api/v1/services/web/rollback", headers=AUTH), 409)
    assert body["error"].startswith("nothing to roll back to: no release recorded by Sluice made 1.0.0")
    error(client.post("/api/v1/services/nope/rollback", headers=AUTH), 404)
    error(client.post("/api/v1/services/web/rollback", json={"force": "yes"}, headers=AUTH), 400)
    error(client.post("/api/v1/services/web/rollback", json={"who": "x"}, headers=AUTH), 400)

    promoted(client, ctx)
    running = deploy(client, "1.2.0").get_json()["release"]
    tick(ctx, running, 0)
    body = error(client.post("/api/v1/services/web/rollback", headers=AUTH), 409)
    assert f"release {running} (1.1.0 -> 1.2.0) is running" in body["error"] and "force" in body["error"]
    assert ctx.store.get(running).state == "running"  # type: ignore[union-attr]

    router.missing.add("1.0.0")  # the previous version's servers are gone
    body = error(client.post("/api/v1/services/web/rollback", json={"force": True}, headers=AUTH), 409)
    assert "nothing to roll back to: 1.0.0" in body["error"] and "no server for 1.0.0" in body["error"]
    assert ctx.store.get(running).state == "running"  # refused: nothing was done
    router.missing.clear()
    router.healthy = False
    body = error(client.post("/api/v1/services/web/rollback", json={"force": True}, headers=AUTH), 409)
    assert "1.0.0 cannot take traffic (down)" in body["error"]
    router.healthy = True

    # Forced: the release in flight is aborted (its candidate is not known-bad), then the rollback.
    resp = client.post("/api/v1/services/web/rollback", json={"force": True, "by": "carol"}, headers=AUTH)
    assert resp.status_code == 201, resp.get_json()
    assert ctx.store.get(running).state == "aborted"  # type: ignore[union-attr]
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0, "1.2.0": 0}
    assert [k["version"] for k in known_bad(client)] == ["1.1.0"]


def test_a_rollback_the_router_could_not_apply_is_finished_by_its_tick(
    client: FlaskClient, ctx: Context, router: FakeRouter
) -> None:
    promoted(client, ctx)
    router.fail_next(1, retryable=True)
    resp = client.post("/api/v1/services/web/rollback", headers=AUTH)
    assert resp.status_code == 202  # recorded, not done: the release at Location tells how it ends
    assert resp.headers["Location"] == f"/api/v1/releases/{resp.get_json()['id']}"
    rel = resp.get_json()
    assert rel["state"] == "running" and rel["weights_applied"] is False
    assert known_bad(client) == []  # not rolled back yet
    done = finish(ctx, rel["id"])  # the backstop tick retries the router, then ends the rollback
    assert done.state == "succeeded" and done.weights_applied
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}
    assert [k["reason"] for k in known_bad(client)] == ["rolled back by api"]


def test_a_rollback_the_router_refuses_fails_and_leaves_traffic_where_it_was(
    client: FlaskClient, ctx: Context, router: FakeRouter
) -> None:
    promoted(client, ctx)
    router.fail_next(1, retryable=False)
    rel = client.post("/api/v1/services/web/rollback", headers=AUTH).get_json()
    assert rel["state"] == "failed" and "injected failure" in rel["reason"]
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}
    assert known_bad(client) == []  # a failed rollback says nothing about either version
    assert [d["event"] for d in rel["hook_deliveries"]] == ["failed"]
