"""Tokens by role and people by name (issue #20 items 2, 10): the intake token only announces; steering
needs the operator role, known-bad changes the admin role; a person's token (created with `sluice token
create`, stored hashed) names them on what they do, and the audit log says who did what."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from app.cli.main import main
from app.context import Context
from app.release.intake import start_release
from app.web import create_app
from tests.support.web import TOKEN, logged_in

pytestmark = pytest.mark.integration

INTAKE = "intake-token-for-role-tests-31f"
READ = "read-token-for-role-tests-77c"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setenv("SLUICE_INTAKE_TOKEN", INTAKE)
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ)
    return create_app().test_client()


def new_token(redis_url: str, name: str, role: str) -> str:
    result = CliRunner().invoke(main, ["token", "create", "--name", name, "--role", role], env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


def test_the_intake_token_cannot_abort_nor_force(client: FlaskClient, ctx: Context) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    resp = client.post(f"/api/v1/releases/{rid}/abort", headers=bearer(INTAKE))
    assert resp.status_code == 403
    assert "operator or admin role" in resp.get_json()["error"] and "intake" in resp.get_json()["error"]
    assert ctx.store.get(rid).state != "aborted"  # type: ignore[union-attr]
    forced = client.post(
        "/hooks/deploy", json={"service": "api", "version": "2.1.0", "force": True, "by": "ci"}, headers=bearer(INTAKE)
    )
    assert forced.status_code == 403 and "`force`" in forced.get_json()["error"]
    assert "operator" in forced.get_json()["error"]
    # It still announces.
    assert (
        client.post("/hooks/deploy", json={"service": "api", "version": "2.1.0"}, headers=bearer(INTAKE)).status_code
        == 202
    )
    # And it cannot read.
    assert client.get("/api/v1/releases", headers=bearer(INTAKE)).status_code == 403


def test_the_read_token_reads_and_does_not_steer(client: FlaskClient, ctx: Context) -> None:
    rid = start_release(ctx, "web", "1.1.0").release.id
    assert client.get(f"/api/v1/releases/{rid}", headers=bearer(READ)).status_code == 200
    resp = client.post(f"/api/v1/releases/{rid}/pause", headers=bearer(READ))
    assert resp.status_code == 403 and "read role" in resp.get_json()["error"]


def test_known_bad_changes_need_the_admin_role(client: FlaskClient, ctx: Context, redis_url: str) -> None:
    operator = new_token(redis_url, "olga", "operator")
    resp = client.delete("/api/v1/services/web/known-bad/1.1.0", headers=bearer(operator))
    assert resp.status_code == 403 and "admin role" in resp.get_json()["error"]
    admin = new_token(redis_url, "ada", "admin")
    assert client.delete("/api/v1/services/web/known-bad/1.1.0", headers=bearer(admin)).status_code == 404


def test_a_persons_token_is_stored_hashed_and_names_them(client: FlaskClient, ctx: Context, redis_url: str) -> None:
    token = new_token(redis_url, "alice", "operator")
    assert token.startswith("sluice_") and len(token) > 40
    for key in ctx.store.r.scan_iter("sluice:*"):  # Redis holds no copy of the token
        kind = ctx.store.r.type(key)
        dump = ctx.store.r.dump(key) if kind in (b"string", b"hash", b"list") else b""
        assert token.encode() not in (key + (dump or b""))
    rid = start_release(ctx, "web", "1.1.0").release.id
    resp = client.post(f"/api/v1/releases/{rid}/abort", json={"reason": "checkout broken"}, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    assert ctx.store.get(rid).reason == "abort by alice: checkout broken"  # type: ignore[union-attr]
    audit = client.get("/api/v1/audit", headers=bearer(READ)).get_json()["entries"]
    assert (audit[0]["who"], audit[0]["role"], audit[0]["action"], audit[0]["target"]) == (
        "alice",
        "operator",
        "abort",
        rid,
    )
    assert [e["action"] for e in audit][-1] == "token-create"
    # Revoked: the token stops working at once.
    assert CliRunner().invoke(main, ["token", "revoke", "--name", "alice"], env={"REDIS_URL": redis_url}).exit_code == 0
    assert client.get("/api/v1/releases", headers=bearer(token)).status_code == 401


def test_a_typed_by_does_not_replace_a_persons_name(client: FlaskClient, ctx: Context, redis_url: str) -> None:
    token = new_token(redis_url, "bob", "operator")
    note = {"service": "api", "version": "2.1.0", "force": True, "by": "mallory", "reason": "retry"}
    assert client.post("/hooks/deploy", json=note, headers=bearer(token)).status_code == 202
    entry = client.get("/api/v1/audit", headers=bearer(READ)).get_json()["entries"][0]
    assert (entry["who"], entry["action"]) == ("bob", "force")
    # The shared admin token records the typed name after its label: a claim, visibly so.
    note = {"service": "web", "version": "1.1.0", "force": True, "by": "mallory"}
    assert client.post("/hooks/deploy", json=note, headers=bearer(TOKEN)).status_code == 202
    assert client.get("/api/v1/audit", headers=bearer(READ)).get_json()["entries"][0]["who"] == "api:mallory"


def test_the_audit_log_needs_a_read_role(client: FlaskClient) -> None:
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/audit", headers=bearer(INTAKE)).status_code == 403
    assert client.get("/api/v1/audit?limit=x", headers=bearer(READ)).status_code == 400


def test_the_dashboard_shows_the_audit_log(client: FlaskClient, ctx: Context, redis_url: str) -> None:
    token = new_token(redis_url, "carol", "operator")
    rid = start_release(ctx, "web", "1.1.0").release.id
    client.post(f"/api/v1/releases/{rid}/abort", json={"reason": "<script>alert(1)</script>"}, headers=bearer(token))
    assert client.get("/audit").status_code == 303  # a page: log in first
    logged_in(client, READ)
    page = client.get("/audit").get_data(as_text=True)
    assert "carol" in page and f'href="/releases/{rid}"' in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    # A person's own token opens a dashboard session too, which revoking ends.
    reader = new_token(redis_url, "dave", "read")
    browser = logged_in(create_app().test_client(), reader)
    assert browser.get("/audit").status_code == 200
    CliRunner().invoke(main, ["token", "revoke", "--name", "dave"], env={"REDIS_URL": redis_url})
    assert browser.get("/audit").status_code == 303
