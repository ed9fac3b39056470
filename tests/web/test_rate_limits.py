"""Rate limits on login and intake (issue 20, item 8): 60 wrong logins were 60 x 401. Counted in Redis,
so every web process (gunicorn worker, replica) shares one count per client address."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from app.context import Context
from app.core.webhook_signing import headers as signed_headers
from app.web import create_app
from tests.support.web import AUTH

pytestmark = pytest.mark.integration
SECRET = "whsec_" + "c2x1aWNlLWRlcGxveS1zZWNyZXQtZm9yLXRlc3Rz"


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


def circleci_job(event_id: str) -> bytes:
    """A job of a project Sluice does not know: processed once (its id claimed), answered 202 ignored."""
    job = {"name": "unit-tests", "status": "success"}
    return json.dumps(
        {"id": event_id, "type": "job-completed", "project": {"slug": "gh/acme/other"}, "job": job}
    ).encode()


def releases_of(ctx: Context) -> list[tuple[str, int, int]]:
    """What a user sees stored: each release's version, its duplicates and its events."""
    return sorted(
        (r.target_version, ctx.store.duplicates(r.id), len(ctx.store.events(r.id)))
        for r in ctx.store.list_releases(limit=100)[0]
    )


def test_a_refused_deploy_records_nothing(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count rides in the script of a deploy's first Redis effect: refused, that script does nothing else."""
    monkeypatch.setenv("SLUICE_INTAKE_RATE", "2 per minute")
    client = create_app().test_client()
    assert client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).status_code == 202
    assert client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).status_code == 200
    before = releases_of(ctx)
    assert before[0][:2] == ("1.1.0", 1)
    assert_429(client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH))  # a duplicate
    assert_429(client.post("/hooks/deploy", json={"service": "web", "version": "1.2.0"}, headers=AUTH))  # a new one
    forced = {"service": "web", "version": "1.1.0", "force": True, "by": "ann", "reason": "retry"}
    assert_429(client.post("/hooks/deploy", json=forced, headers=AUTH))
    assert releases_of(ctx) == before  # no release, no duplicate counted, no event


def test_a_refused_event_is_not_claimed(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused CircleCI delivery or signed notification leaves its id unclaimed: its retry is processed."""
    monkeypatch.setenv("SLUICE_INTAKE_RATE", "1 per minute")
    monkeypatch.setenv("CIRCLECI_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("SLUICE_DEPLOY_SECRET", SECRET)
    client = create_app().test_client()
    assert client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).status_code == 202
    body = circleci_job("ev-1")
    mac = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    hdrs = {"Content-Type": "application/json", "circleci-signature": f"v1={mac}"}
    assert_429(client.post("/hooks/circleci", data=body, headers=hdrs))
    note = json.dumps({"service": "web", "version": "1.2.0"}).encode()
    signed = {"Content-Type": "application/json", **signed_headers(SECRET, "msg_1", int(time.time()), note)}
    assert_429(client.post("/hooks/deploy", data=note, headers=signed))
    assert ctx.store.r.keys("sluice:event:*") == []


def test_requests_that_end_before_redis_are_counted(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 400 or 401 touches no Redis record, yet spends the budget: past it, a 429 in its place."""
    monkeypatch.setenv("SLUICE_INTAKE_RATE", "3 per minute")
    client = create_app().test_client()
    assert client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}).status_code == 401
    assert client.post("/hooks/deploy", json={"service": "web"}, headers=AUTH).status_code == 400
    assert client.post("/hooks/deploy", json={"service": "nope", "version": "1"}, headers=AUTH).status_code == 404
    assert_429(client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}))
    assert_429(client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH))
    assert ctx.store.list_releases()[1] == 0


def sent_by(ctx: Context, request) -> list[str]:  # type: ignore[no-untyped-def]
    """The commands Redis receives while `request()` is answered (connection set-up aside)."""
    with ctx.store.r.monitor() as monitor:  # every command Redis receives, and from where
        request()
        ctx.store.r.echo("done")
        sent = []
        for cmd in monitor.listen():
            if cmd["command"] == "ECHO done":
                break
            name = cmd["command"].split()[0]
            # A script's own commands are not round trips; nor is opening a connection (the monitor took one).
            if cmd["client_type"] != "lua" and name not in ("HELLO", "PING", "CLIENT", "AUTH", "SELECT"):
                sent.append(name)
    return sent


def test_a_duplicate_deploy_is_one_redis_round_trip(ctx: Context) -> None:
    """A retrying CI's path: the rate limit and the duplicate lookup in one script (issue #21 item 6)."""
    client = create_app().test_client()
    note = {"service": "web", "version": "1.1.0"}
    assert client.post("/hooks/deploy", json=note, headers=AUTH).status_code == 202
    sent = sent_by(ctx, lambda: client.post("/hooks/deploy", json=note, headers=AUTH).status_code == 200)
    assert sent == ["EVALSHA"]  # the rate limit, then the known-bad/duplicate lookup, in one script


def test_a_circleci_duplicate_is_one_redis_round_trip(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCLECI_WEBHOOK_SECRET", "s3cret")
    client = create_app().test_client()
    body = circleci_job("ev-2")
    mac = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    hdrs = {"Content-Type": "application/json", "circleci-signature": f"v1={mac}"}
    first = client.post("/hooks/circleci", data=body, headers=hdrs)
    assert first.status_code == 202, first.get_data(as_text=True)
    sent = sent_by(ctx, lambda: client.post("/hooks/circleci", data=body, headers=hdrs))
    assert sent == ["EVALSHA"]  # the rate limit, then the once-only claim, in one script
