"""Rate limits on login and intake (issue 20, item 8): 60 wrong logins were 60 x 401. Counted in Redis,
so every web process (gunicorn worker, replica) shares one count per client address."""

from __future__ import annotations

import pytest

from app.context import Context
from app.web import create_app
from tests.support.web import AUTH

pytestmark = pytest.mark.integration


def wrong_login(client, ip: str = "192.0.2.10"):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"token": "guess", "next": "/"}, environ_base={"REMOTE_ADDR": ip})


def assert_429(resp) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 429, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/json" and "too many" in resp.get_json()["error"]
    assert 0 < int(resp.headers["Retry-After"]) <= 60


def test_wrong_logins_are_limited_per_address_across_processes(ctx: Context) -> None:
    first, second = create_app().test_client(), create_app().test_client()  # two gunicorn workers
    for _ in range(5):
        assert wrong_login(first).status_code == 401
    for _ in range(5):
        assert wrong_login(second).status_code == 401
    assert_429(wrong_login(first))
    assert_429(wrong_login(second))
    assert wrong_login(first, ip="192.0.2.11").status_code == 401  # another address: its own count
    assert first.get("/login").status_code == 200  # the form itself is not counted


def test_only_failed_logins_count(ctx: Context) -> None:
    client = create_app().test_client()
    for _ in range(15):
        ok = client.post("/login", data={"token": AUTH["Authorization"].split()[1], "next": "/"})
        assert ok.status_code == 303


def test_intake_is_limited_per_address(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_INTAKE_RATE", "3 per minute")
    client = create_app().test_client()
    note = {"service": "web", "version": "1.1.0"}
    for _ in range(3):
        assert client.post("/hooks/deploy", json=note, headers=AUTH).status_code in (200, 202)
    assert_429(client.post("/hooks/deploy", json=note, headers=AUTH))
    assert_429(client.post("/hooks/circleci", data=b"{}", headers={"Content-Type": "application/json"}))


def test_a_rate_that_cannot_be_read_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_LOGIN_RATE", "lots")
    with pytest.raises(ValueError, match="SLUICE_LOGIN_RATE.*'10 per minute'"):
        create_app()
