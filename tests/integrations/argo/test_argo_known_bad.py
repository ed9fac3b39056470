"""A GitOps sync of a version whose release failed is refused like a deploy notification (the
intake is the one place every announcement meets): 409 with the reason, so that Argo's retry
does not release it again."""

from __future__ import annotations

import time

import pytest

from app.context import Context
from app.web import create_app
from tests.support.ci import API_TOKEN, get
from tests.support.fakes import FakePrometheus
from workers.tick import tick

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_argocd_sync_of_a_failed_version_is_refused(ctx: Context, prom: FakePrometheus) -> None:
    prom.serve("2.0.0", 18000)
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    client = create_app().test_client()
    note = {"app": "shop-api", "images": ["ghcr.io/acme/api:2.0.371"], "finishedAt": "t1", "phase": "Succeeded"}
    resp = client.post("/hooks/argocd", json=note, headers=AUTH)
    assert resp.status_code == 202, resp.get_json()
    rid = resp.get_json()["release"]
    deadline = time.monotonic() + 10
    while not get(ctx, rid).terminal and time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
    assert get(ctx, rid).state == "failed"

    # Argo CD syncs the same image again (a new operation, so not a duplicate event).
    again = client.post("/hooks/argocd", json={**note, "finishedAt": "t2"}, headers=AUTH)
    assert again.status_code == 409, again.get_json()
    body = again.get_json()
    assert body["error"].startswith("2.0.371 failed on errors-vs-stable")
    assert body["error"].endswith("send force: true to release it again")
    assert body["detail"]["release"] == rid
    assert ctx.store.list_releases(service="api")[1] == 1
