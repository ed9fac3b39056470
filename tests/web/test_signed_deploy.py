"""Signed deploy notifications follow Standard Webhooks (issue #20 item 7): a signature covers an id and
a timestamp, a timestamp more than 5 minutes off is refused, and an id is accepted once, so a captured
notification (say one with `force: true`) cannot be sent again. The old untimed `X-Sluice-Signature`
works only when explicitly allowed (deprecated)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest
from flask.testing import FlaskClient

from app.context import Context
from app.core.webhook_signing import headers as signed_headers
from app.core.webhook_signing import signature
from app.web import create_app

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c2x1aWNlLWRlcGxveS1zZWNyZXQtZm9yLXRlc3Rz"  # the spec's form: whsec_<base64>


@pytest.fixture
def client(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setenv("SLUICE_DEPLOY_SECRET", SECRET)
    return create_app().test_client()


def post(client: FlaskClient, body: bytes, msg_id: str, at: int) -> tuple[int, str]:
    hdrs = {"Content-Type": "application/json", **signed_headers(SECRET, msg_id, at, body)}
    resp = client.post("/hooks/deploy", data=body, headers=hdrs)
    return resp.status_code, (resp.get_json() or {}).get("error", "")


def test_the_specs_example_signature() -> None:
    """The worked example of the Standard Webhooks specification, so off-the-shelf verifiers agree."""
    body = b'{"test": 2432232314}'
    got = signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_signed_notification_starts_a_release_once(client: FlaskClient, ctx: Context) -> None:
    body = json.dumps({"service": "web", "version": "1.1.0"}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = int(time.time())
    assert post(client, body, msg_id, now)[0] == 202
    status, error = post(client, body, msg_id, now)  # the same request, captured and sent again
    assert status == 401 and "replay" in error


def test_a_stale_or_forged_notification_is_refused(client: FlaskClient, ctx: Context) -> None:
    body = json.dumps({"service": "web", "version": "1.1.0"}).encode()
    status, error = post(client, body, "msg_old", int(time.time()) - 301)
    assert status == 401 and "webhook-timestamp" in error
    hdrs = {"Content-Type": "application/json", **signed_headers(SECRET, "msg_x", int(time.time()), body)}
    resp = client.post("/hooks/deploy", data=body.replace(b"1.1.0", b"1.2.0"), headers=hdrs)
    assert resp.status_code == 401 and "does not match" in resp.get_json()["error"]
    hdrs.pop("webhook-id")
    resp = client.post("/hooks/deploy", data=body, headers=hdrs)
    assert resp.status_code == 401 and "webhook-id" in resp.get_json()["error"]
    assert ctx.store.list_releases()[1] == 0


def test_a_signed_notification_cannot_force(client: FlaskClient, ctx: Context) -> None:
    body = json.dumps({"service": "web", "version": "1.1.0", "force": True, "by": "ci"}).encode()
    status, error = post(client, body, f"msg_{uuid.uuid4().hex}", int(time.time()))
    assert status == 403 and "operator" in error


def test_the_untimed_signature_is_refused_unless_allowed(
    client: FlaskClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({"service": "web", "version": "1.1.0"}).encode()
    old = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    hdrs = {"Content-Type": "application/json", "X-Sluice-Signature": old}
    resp = client.post("/hooks/deploy", data=body, headers=hdrs)
    assert resp.status_code == 401 and "deprecated" in resp.get_json()["error"]
    monkeypatch.setenv("SLUICE_ALLOW_UNTIMED_SIGNATURE", "1")
    assert client.post("/hooks/deploy", data=body, headers=hdrs).status_code == 202
