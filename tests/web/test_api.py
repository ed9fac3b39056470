"""The web process (Flask test client) against a real Redis: deploy webhook, REST API, health."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.cli.demo.stack import free_port
from app.context import Context, set_context
from app.core.webhook_signing import headers as signed_headers
from app.store import PREFIX
from app.web import MAX_BODY_BYTES, create_app
from tests.support.fakes import FakePrometheus, FakeRouter, config_text, shop_context
from tests.support.web import logged_in
from workers.tick import tick

pytestmark = pytest.mark.integration

TOKEN = "api-token-for-tests"
DEPLOY_SECRET = "deploy-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLUICE_DEPLOY_SECRET", DEPLOY_SECRET)
    with shop_context(config_text(), redis_url, prom, router) as context:
        yield context


@pytest.fixture
def client(ctx: Context) -> FlaskClient:
    """Logged in for reads as the dashboard is (a session cookie); writes still send their token."""
    return logged_in(create_app().test_client(), TOKEN)


def assert_json_error(resp: TestResponse, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/json", resp.get_data(as_text=True)
    text = resp.get_data(as_text=True)
    assert "<html" not in text.lower() and "Traceback" not in text
    body = resp.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    return body


def deploy(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> TestResponse:
    return client.post("/hooks/deploy", json=body, headers=AUTH if headers is None else headers)


def stored_releases(ctx: Context) -> int:
    return ctx.store.list_releases()[1]


# --- POST /hooks/deploy -------------------------------------------------------------------------------


def test_deploy_starts_a_release_and_duplicates_return_it(client: FlaskClient, ctx: Context) -> None:
    resp = deploy(client, {"service": "web", "version": "1.1.0", "ci": {"provider": "circleci", "job_number": 7}})
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    rid = body["release"]
    assert body["status_url"] == f"/api/v1/releases/{rid}"
    assert resp.headers["Location"] == body["status_url"]
    assert body["duplicate"] is False and body["state"] == "pending"
    assert body["source_version"] == "1.0.0" and body["target_version"] == "1.1.0" and body["policy"] == "canary"

    detail = client.get(body["status_url"])
    assert detail.status_code == 200
    data = detail.get_json()
    assert data["id"] == rid and data["trigger"] == "circleci" and data["ci"]["job_number"] == 7
    assert [e["type"] for e in data["events"]] == ["created"]
    assert len(data["steps"]) == 3

    again = deploy(client, {"service": "web", "version": "1.1.0"})
    assert again.status_code == 200
    assert again.get_json()["release"] == rid and again.get_json()["duplicate"] is True
    assert stored_releases(ctx) == 1


def test_deploy_authentication(client: FlaskClient, ctx: Context) -> None:
    note = {"service": "web", "version": "1.1.0"}
    resp = deploy(client, note, headers={})
    assert "SLUICE_INTAKE_TOKEN" in assert_json_error(resp, 401)["error"]
    assert resp.headers.get("WWW-Authenticate") == "Bearer"
    assert_json_error(deploy(client, note, headers={"Authorization": "Bearer nope"}), 401)
    assert_json_error(deploy(client, note, headers={"Authorization": f"Basic {TOKEN}"}), 401)
    assert stored_releases(ctx) == 0

    raw = json.dumps(note).encode()
    now = int(time.time())
    good = signed_headers(DEPLOY_SECRET, "msg_1", now, raw)
    bad = signed_headers("wrong", "msg_1", now, raw)
    headers = {"Content-Type": "application/json"}
    resp = client.post("/hooks/deploy", data=raw, headers={**headers, **bad})
    assert "signature" in assert_json_error(resp, 401)["error"]
    assert stored_releases(ctx) == 0
    resp = client.post("/hooks/deploy", data=raw, headers={**headers, **good})
    assert resp.status_code == 202, resp.get_json()
    assert stored_releases(ctx) == 1


def test_signature_disabled_without_secret(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_DEPLOY_SECRET")
    raw = b'{"service":"web","version":"1.1.0"}'
    sig = signed_headers("", "msg_2", int(time.time()), raw)
    resp = client.post("/hooks/deploy", data=raw, headers={"Content-Type": "application/json", **sig})
    assert "SLUICE_DEPLOY_SECRET" in assert_json_error(resp, 401)["error"]


def test_api_token_unset_on_server_is_401(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_API_TOKEN")
    assert_json_error(deploy(client, {"service": "web", "version": "1.1.0"}), 401)


def test_deploy_body_errors(client: FlaskClient, ctx: Context) -> None:
    resp = client.post("/hooks/deploy", data="service=web", headers={**AUTH, "Content-Type": "text/plain"})
    assert_json_error(resp, 415)
    resp = client.post("/hooks/deploy", data="service=web", headers=AUTH)  # no content type at all
    assert_json_error(resp, 415)
    resp = client.post(
        "/hooks/deploy", data=b'{"service": "web",', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert "not valid JSON" in assert_json_error(resp, 400)["error"]
    resp = client.post("/hooks/deploy", data=b"\xff\xfe", headers={**AUTH, "Content-Type": "application/json"})
    assert_json_error(resp, 400)
    assert_json_error(deploy(client, ["web", "1.1.0"]), 400)
    resp = client.post("/hooks/deploy", data=b"null", headers={**AUTH, "Content-Type": "application/json"})
    assert "JSON object" in assert_json_error(resp, 400)["error"]

    body = assert_json_error(deploy(client, {"service": "web", "version": "1.1.0", "colour": "blue"}), 400)
    assert [d["field"] for d in body["detail"]] == ["colour"]
    body = assert_json_error(deploy(client, {"service": "web"}), 400)
    assert [d["field"] for d in body["detail"]] == ["version"]
    body = assert_json_error(deploy(client, {"service": "web", "version": 11}), 400)
    assert [d["field"] for d in body["detail"]] == ["version"]
    body = assert_json_error(deploy(client, {"service": "web", "version": "1.1.0", "ci": {"build_url": "x"}}), 400)
    assert [d["field"] for d in body["detail"]] == ["ci.build_url"]

    for version in ['1.0"}', "1.0 beta", "1.0\n", ""]:
        body = assert_json_error(deploy(client, {"service": "web", "version": version}), 400)
        assert "version" in body["error"]
    assert_json_error(deploy(client, {"service": "web", "version": "1.1.0", "namespace": "other"}), 400)
    assert stored_releases(ctx) == 0
    assert ctx.store.due_count() == 0


def test_deploy_unknown_service_lists_known(client: FlaskClient, ctx: Context) -> None:
    body = assert_json_error(deploy(client, {"service": "nope", "version": "1.0.0"}), 404)
    assert "nope" in body["error"]
    assert "shop/web" in body["detail"]["known_services"]
    assert stored_releases(ctx) == 0


def test_deploy_same_as_stable_is_409(client: FlaskClient) -> None:
    assert_json_error(deploy(client, {"service": "web", "version": "1.0.0"}), 409)


def test_deploy_body_too_large(client: FlaskClient, ctx: Context) -> None:
    big = json.dumps({"service": "web", "version": "1.1.0", "ci": {"job_name": "x" * (MAX_BODY_BYTES + 10)}})
    resp = client.post("/hooks/deploy", data=big, headers={**AUTH, "Content-Type": "application/json"})
    assert "too large" in assert_json_error(resp, 413)["error"]
    # Signed senders hit the limit too, before any hashing of the body.
    resp = client.post(
        "/hooks/deploy",
        data=big,
        headers={
            "Content-Type": "application/json",
            "webhook-id": "m",
            "webhook-timestamp": "1",
            "webhook-signature": "v1,00",
        },
    )
    assert_json_error(resp, 413)
    assert stored_releases(ctx) == 0


# --- GET /api/v1/releases ---------------------------------------------------------------------------


def test_get_unknown_release_is_404(client: FlaskClient) -> None:
    body = assert_json_error(client.get("/api/v1/releases/r-nope"), 404)
    assert "r-nope" in body["error"]


def test_list_releases_with_filters(client: FlaskClient, ctx: Context) -> None:
    web = deploy(client, {"service": "web", "version": "1.1.0"}).get_json()["release"]
    api = deploy(client, {"service": "api", "version": "2.1.0"}).get_json()["release"]
    cart = deploy(client, {"service": "cart", "version": "3.1.0"}).get_json()["release"]
    tick(ctx, api, 0)

    data = client.get("/api/v1/releases").get_json()
    assert data["total"] == 3 and [r["id"] for r in data["releases"]] == [cart, api, web]
    assert "hooks" not in data["releases"][0]

    data = client.get("/api/v1/releases?service=web").get_json()
    assert [r["id"] for r in data["releases"]] == [web] and data["total"] == 1
    data = client.get("/api/v1/releases?state=running").get_json()
    assert [r["id"] for r in data["releases"]] == [api]
    assert data["releases"][0]["weights"] == {"2.0.0": 90, "2.1.0": 10}
    assert data["releases"][0]["current_step"] == 1
    data = client.get("/api/v1/releases?state=pending&service=cart").get_json()
    assert [r["id"] for r in data["releases"]] == [cart]
    data = client.get("/api/v1/releases?application=other").get_json()
    assert data["releases"] == [] and data["total"] == 0
    data = client.get("/api/v1/releases?limit=1&offset=1").get_json()
    assert [r["id"] for r in data["releases"]] == [api] and data["total"] == 3

    body = assert_json_error(client.get("/api/v1/releases?state=bogus"), 400)
    assert "running" in body["error"]
    assert "limit" in assert_json_error(client.get("/api/v1/releases?limit=abc"), 400)["error"]
    assert_json_error(client.get("/api/v1/releases?limit=0"), 400)
    assert_json_error(client.get("/api/v1/releases?limit=100000"), 400)
    assert_json_error(client.get("/api/v1/releases?offset=-1"), 400)


# --- POST /api/v1/releases/<id>/<action> ------------------------------------------------------------------


def test_abort_via_api(client: FlaskClient, ctx: Context, router: FakeRouter) -> None:
    rid = deploy(client, {"service": "web", "version": "1.1.0"}).get_json()["release"]
    tick(ctx, rid, 0)

    assert_json_error(client.post(f"/api/v1/releases/{rid}/abort"), 401)
    assert_json_error(client.post(f"/api/v1/releases/{rid}/abort", headers={"Authorization": "Bearer x"}), 401)
    assert ctx.store.get(rid).state == "running"  # type: ignore[union-attr]

    body = assert_json_error(client.post(f"/api/v1/releases/{rid}/explode", headers=AUTH), 404)
    assert "abort" in body["error"]

    resp = client.post(f"/api/v1/releases/{rid}/abort", json={"reason": "smoke test broke"}, headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["state"] == "aborted" and data["reason"] == "abort by api: smoke test broke"
    assert data["weights"] == {"1.0.0": 100}
    assert "aborted" in [e["type"] for e in data["events"]]
    assert router.weights["web"] == {"1.0.0": 100, "1.1.0": 0}

    body = assert_json_error(client.post(f"/api/v1/releases/{rid}/abort", headers=AUTH), 409)
    assert "aborted" in body["error"]
    assert_json_error(client.post("/api/v1/releases/r-nope/abort", headers=AUTH), 404)


def test_pause_resume_promote_via_api(client: FlaskClient, ctx: Context, router: FakeRouter) -> None:
    rid = deploy(client, {"service": "web", "version": "1.1.0"}).get_json()["release"]
    tick(ctx, rid, 0)
    assert client.post(f"/api/v1/releases/{rid}/pause", headers=AUTH).get_json()["state"] == "paused"
    assert_json_error(client.post(f"/api/v1/releases/{rid}/pause", headers=AUTH), 409)
    assert client.post(f"/api/v1/releases/{rid}/resume", headers=AUTH).get_json()["state"] == "running"
    # A body that is not JSON is not an error for a control action: there is just no reason.
    resp = client.post(f"/api/v1/releases/{rid}/promote", data="oops", headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status_code == 200 and resp.get_json()["state"] == "succeeded"
    assert router.weights["web"] == {"1.0.0": 0, "1.1.0": 100}


# --- errors are JSON everywhere ---------------------------------------------------------------------------


def test_framework_errors_are_json(client: FlaskClient) -> None:
    assert_json_error(client.get("/no/such/page"), 404)
    assert_json_error(client.get("/hooks/deploy"), 405)
    assert_json_error(client.delete("/api/v1/releases"), 405)


def test_unexpected_errors_are_json_without_traceback(
    client: FlaskClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A context whose Redis is gone: a JSON 503 with Retry-After (tests/web/test_redis_outage.py).
    dead = Context(config=ctx.config, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    set_context(dead)
    for resp in (client.get("/api/v1/releases"), deploy(client, {"service": "web", "version": "1.1.0"})):
        assert "Redis" in assert_json_error(resp, 503)["error"] and resp.headers["Retry-After"]
    set_context(ctx)

    # A bug: the API answers with a JSON 500, not an HTML page nor a traceback.
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(type(ctx.store), "release_page", broken)
    body = assert_json_error(client.get("/api/v1/releases"), 500)
    assert "internal error" in body["error"] and "a bug" not in body["error"]


# --- health -------------------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: FlaskClient, ctx: Context) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json()["status"] == "ready"


def test_readyz_503_when_redis_unreachable(client: FlaskClient, ctx: Context) -> None:
    set_context(Context(config=ctx.config, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["status"] == "not ready" and "dependencies" in body["detail"]
    assert client.get("/healthz").status_code == 200  # liveness does not depend on Redis


def test_nothing_stored_by_rejected_requests(client: FlaskClient, ctx: Context) -> None:
    deploy(client, {"service": "web", "version": "1.1.0"}, headers={})
    deploy(client, {"service": "web", "version": "bad version"})
    stored = [k for k in ctx.store.r.keys(PREFIX + "*") if not k.startswith(b"sluice:ratelimit:")]
    assert stored == []  # only the rate limit's count of requests from this address (app/store/rate_limits.py)
