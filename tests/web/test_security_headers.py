"""Headers and cookies (issue 20, item 12): a CSP that admits only Sluice's own scripts and styles, no
framing, no MIME sniffing, no referrer to other sites; the session cookie Secure behind a trusted
TLS-terminating proxy, and X-Forwarded-* ignored unless that proxy is configured."""

from __future__ import annotations

import pytest

from app.context import Context
from app.web import auth, create_app
from tests.support.web import AUTH, TOKEN

pytestmark = pytest.mark.integration
PATHS = ["/login", "/healthz", "/api/v1/releases", "/openapi.json", "/no-such-page", "/static/dashboard.css"]


def test_every_answer_carries_the_security_headers(ctx: Context) -> None:
    client = create_app().test_client()
    for path in PATHS:
        resp = client.get(path, headers=AUTH)
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "object-src 'none'" in csp
        assert resp.headers.get("X-Frame-Options") == "DENY", path
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
        assert resp.headers.get("Referrer-Policy") == "same-origin", path


def login(client, **headers: str):  # type: ignore[no-untyped-def]
    resp = client.post("/login", data={"token": TOKEN, "next": "/"}, headers=headers)
    assert resp.status_code == 303
    return resp.headers["Set-Cookie"]


def test_cookie_is_secure_behind_a_configured_proxy(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    cookie = login(create_app().test_client(), **forwarded)
    assert "Secure" not in cookie  # no proxy configured: a client's X-Forwarded-Proto means nothing
    monkeypatch.setenv("SLUICE_TRUSTED_PROXY_HOPS", "1")
    cookie = login(create_app().test_client(), **forwarded)
    assert cookie.startswith(auth.SESSION_COOKIE + "=") and TOKEN not in cookie
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_wrong_proxy_hop_count_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TRUSTED_PROXY_HOPS", "yes")
    with pytest.raises(ValueError, match="SLUICE_TRUSTED_PROXY_HOPS"):
        create_app()
