"""The web tests' API token, and logging a Flask test client in as the dashboard does."""

from __future__ import annotations

from typing import Any

TOKEN = "web-tests-token-8c1f2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def logged_in(client: Any, token: str = TOKEN) -> Any:
    """The client with a dashboard session (POST /login): its reads need no header; its writes still do."""
    resp = client.post("/login", data={"token": token, "next": "/"})
    assert resp.status_code == 303, (resp.status_code, resp.get_data(as_text=True)[:300])
    return client


READ_TOKEN = "read-token-for-tests-5d2e"


def read_api(path: str) -> Any:
    """GET `path` from a fresh web app as a read-only user would (a read token, set for this call only)."""
    import os
    from unittest import mock

    from app.web import create_app

    with mock.patch.dict(os.environ, {"SLUICE_READ_TOKEN": READ_TOKEN}):
        return create_app().test_client().get(path, headers={"Authorization": f"Bearer {READ_TOKEN}"})
