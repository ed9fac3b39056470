"""Shadow mode over HTTP (Flask test client, real Redis): asking for it on a deploy notification,
the errors that say what to fix, and the release's mode in the API's JSON and on its page."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.context import Context
from app.web import create_app
from tests.support.web import AUTH, logged_in
from workers.tick import tick

pytestmark = pytest.mark.integration


@pytest.fixture
def client(ctx: Context) -> FlaskClient:
    return logged_in(create_app().test_client())


def deploy(client: FlaskClient, body: dict[str, Any], query: str = "") -> Any:
    return client.post(f"/hooks/deploy{query}", json=body, headers=AUTH)


def error_of(resp: Any, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/json"
    return str(resp.get_json())


def test_mode_shadow_in_the_url_or_the_body_starts_a_shadow_release(client: FlaskClient, ctx: Context) -> None:
    resp = deploy(client, {"service": "web", "version": "1.1.0"}, "?mode=shadow")
    assert resp.status_code == 202, resp.get_json()
    started = resp.get_json()
    assert started["mode"] == "shadow"
    rid = started["release"]
    tick(ctx, rid, 0)
    detail = client.get(started["status_url"]).get_json()
    assert detail["mode"] == "shadow" and detail["shadow_hooks"] == "marked"
    assert detail["observed_weights"] == {}  # the router (fake) has no weights for web: nothing on the candidate
    assert [e["type"] for e in detail["events"]][-1] == "weights_observed"
    listed = client.get("/api/v1/releases").get_json()["releases"]
    assert [(r["id"], r["mode"]) for r in listed] == [(rid, "shadow")]

    # The body says it too; a live release of the same version is another release.
    body = deploy(client, {"service": "web", "version": "1.1.0", "mode": "shadow"})
    assert body.status_code == 200 and body.get_json()["release"] == rid
    live = deploy(client, {"service": "web", "version": "1.1.0"})
    assert live.status_code == 202 and live.get_json()["mode"] == "live" and live.get_json()["release"] != rid

    # The release page has the badge and says traffic was not moved; a live release's page does not.
    page = client.get(f"/releases/{rid}").get_data(as_text=True)
    assert 'class="mode-shadow"' in page and "did not move traffic" in page
    live_page = client.get(f"/releases/{live.get_json()['release']}").get_data(as_text=True)
    assert 'class="mode-shadow"' not in live_page


def test_bad_mode_requests_are_clear_400s_and_store_nothing(client: FlaskClient, ctx: Context) -> None:
    assert "mode" in error_of(deploy(client, {"service": "web", "version": "1.1.0", "mode": "dark"}), 400)
    assert "live, shadow" in error_of(deploy(client, {"service": "web", "version": "1.1.0"}, "?mode=dark"), 400)
    text = error_of(deploy(client, {"service": "web", "version": "1.1.0", "mode": "live"}, "?mode=shadow"), 400)
    assert "give one" in text
    assert ctx.store.list_releases()[1] == 0
