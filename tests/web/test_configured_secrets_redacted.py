"""A webhook gate's URL may carry credentials (user:password@, ?token=): no reader sees them, neither in
GET /api/v1/policies nor in a release's detail (issue #20 item 5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.release.intake import start_release
from app.web import create_app
from tests.support.fakes import BASE_CONFIG, FakePrometheus, FakeRouter
from tests.support.web import READ_TOKEN

pytestmark = pytest.mark.integration

GATE_URL = "https://gatekeeper:hunter2-pass@gates.example/freeze/check?token=tok-9f8e7d&team=shop"
SECRETS = ("hunter2-pass", "tok-9f8e7d", "gatekeeper:")


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ_TOKEN)
    text = BASE_CONFIG.replace(
        "      - {weight: 10, duration: 1s}\n",
        f"      - {{weight: 10, duration: 1s, gates: [{{name: freeze, type: webhook, url: '{GATE_URL}'}}]}}\n",
        1,
    )
    assert GATE_URL in text
    context = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = FakeRouter()
    set_context(context)
    yield context
    set_context(None)
    context.store.r.close()


def test_readers_never_see_a_gates_credentials(ctx: Context) -> None:
    client = create_app().test_client()
    auth = {"Authorization": f"Bearer {READ_TOKEN}"}
    policies = client.get("/api/v1/policies", headers=auth)
    assert policies.status_code == 200
    text = policies.get_data(as_text=True)
    assert "gates.example/freeze/check" in text  # the reader still sees which gate
    assert not [s for s in SECRETS if s in text], text
    rid = start_release(ctx, "web", "1.1.0").release.id
    detail = client.get(f"/api/v1/releases/{rid}", headers=auth)
    assert detail.status_code == 200 and "gates.example/freeze/check" in detail.get_data(as_text=True)
    assert not [s for s in SECRETS if s in detail.get_data(as_text=True)]
    # The configuration itself keeps the URL: the gate is still asked with its credentials.
    gate = ctx.config.policies[0].steps[0].gates[0]
    assert gate.url == GATE_URL  # type: ignore[union-attr]
