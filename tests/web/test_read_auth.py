"""Who may read, announce and steer: the read token, the intake token, the API token, the dashboard's
session cookie, and public reads when a team asks for them."""

from __future__ import annotations

import logging

import pytest

from app.context import Context
from app.web import auth, create_app
from tests.support.web import AUTH, TOKEN

pytestmark = pytest.mark.integration
READ, INTAKE = "read-token-3f9a", "intake-token-77c1"
READS = ["/api/v1/releases", "/api/v1/applications", "/api/v1/policies", "/metrics", "/openapi.json"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ)
    monkeypatch.setenv("SLUICE_INTAKE_TOKEN", INTAKE)
    monkeypatch.delenv("SLUICE_PUBLIC_READS", raising=False)


@pytest.mark.usefixtures("tokens")
@pytest.mark.parametrize("path", READS)
def test_reads_need_the_read_or_api_token(path: str) -> None:
    client = create_app().test_client()
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {READ}"}):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 401, (path, headers, resp.status_code)
        assert resp.mimetype == "application/json" and resp.headers["WWW-Authenticate"] == "Bearer"
        assert READ not in resp.get_data(as_text=True) and TOKEN not in resp.get_data(as_text=True)
    # A known token whose role does not read (intake): 403, naming the roles that do.
    refused = client.get(path, headers=bearer(INTAKE))
    assert refused.status_code == 403 and "read or operator or admin role" in refused.get_json()["error"]
    assert INTAKE not in refused.get_data(as_text=True)
    assert client.get(path, headers=bearer(READ)).status_code == 200
    assert client.get(path, headers=AUTH).status_code == 200


@pytest.mark.usefixtures("tokens")
def test_health_login_and_assets_stay_open() -> None:
    client = create_app().test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/login").status_code == 200
    assert client.get("/assets/dashboard.js").status_code == 200


@pytest.mark.usefixtures("tokens")
def test_intake_token_announces_only() -> None:
    client = create_app().test_client()
    note = {"service": "web", "version": "1.1.0"}
    started = client.post("/hooks/deploy", json=note, headers=bearer(INTAKE))
    assert started.status_code == 202, started.get_json()
    rid = started.get_json()["release"]
    assert client.post("/hooks/deploy", json=note, headers=bearer(READ)).status_code == 403
    assert client.post("/hooks/deploy", json=note, headers=AUTH).status_code == 200  # the API token still works
    # Neither steering nor reading.
    assert client.post(f"/api/v1/releases/{rid}/pause", headers=bearer(INTAKE)).status_code == 403
    assert client.post(f"/api/v1/releases/{rid}/pause", headers=bearer(READ)).status_code == 403
    assert client.get(f"/api/v1/releases/{rid}", headers=bearer(INTAKE)).status_code == 403
    # Argo's receivers take it too (a notifier does not hold the admin token).
    argo = client.post("/hooks/argocd", json={"app": {}}, headers=bearer(INTAKE))
    assert argo.status_code != 401, argo.get_json()
    assert client.post("/hooks/argocd", json={"app": {}}, headers=bearer(READ)).status_code == 403


@pytest.mark.usefixtures("tokens")
def test_the_dashboard_logs_in_once_with_an_httponly_strict_cookie() -> None:
    client = create_app().test_client()
    page = client.get("/releases/r-x?tab=1")
    assert page.status_code == 303 and page.headers["Location"] == "/login?next=%2Freleases%2Fr-x%3Ftab%3D1"
    assert client.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
    assert client.get_cookie(auth.SESSION_COOKIE) is None
    resp = client.post("/login", data={"token": READ, "next": "https://evil.example/"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/"  # never off this server
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and READ not in header
    for path in ["/", *READS]:
        assert client.get(path).status_code == 200, path
    # The session reads only: steering and intake still need their tokens.
    rid = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).get_json()["release"]
    assert client.post(f"/api/v1/releases/{rid}/abort").status_code == 401
    assert client.post("/hooks/deploy", json={"service": "web", "version": "1.2.0"}).status_code == 401
    # Logging out ends it; so does changing the token.
    client.post("/logout")
    assert client.get("/api/v1/releases").status_code == 401


def test_a_session_ends_when_the_token_changes_or_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ)
    monkeypatch.delenv("SLUICE_API_TOKEN", raising=False)
    value = auth.new_session(READ, now=1000.0)
    assert auth.valid_session(value, now=1001.0)
    assert not auth.valid_session(value, now=1000.0 + auth.SESSION_SECONDS + 1)
    assert not auth.valid_session(value.replace(value[-4:], "0000"), now=1001.0)
    assert not auth.valid_session("garbage", now=1001.0) and not auth.valid_session("1.2", now=0)
    monkeypatch.setenv("SLUICE_READ_TOKEN", "rotated-token")
    assert not auth.valid_session(value, now=1001.0)


def test_public_reads_are_explicit_and_logged(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLUICE_PUBLIC_READS", "1")
    with caplog.at_level(logging.WARNING, logger="sluice.web"):
        client = create_app().test_client()
    assert any("SLUICE_PUBLIC_READS is on" in r.getMessage() for r in caplog.records)
    for path in READS:
        assert client.get(path).status_code == 200, path
    rid = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).get_json()["release"]
    assert client.post(f"/api/v1/releases/{rid}/abort").status_code == 401  # writes are never public


def test_no_read_token_configured_refuses_reads_and_says_how(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_API_TOKEN")
    monkeypatch.delenv("SLUICE_READ_TOKEN", raising=False)
    monkeypatch.delenv("SLUICE_PUBLIC_READS", raising=False)
    resp = create_app().test_client().get("/api/v1/releases", headers=bearer("anything"))
    assert resp.status_code == 401
    assert "SLUICE_READ_TOKEN" in resp.get_json()["error"] and "SLUICE_PUBLIC_READS" in resp.get_json()["error"]
