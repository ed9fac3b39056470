"""The dashboard's Approve button in a real browser (headless Chromium): a release waiting for a
manual gate is approved from its page, with the API token typed in, and the approver is recorded.

The web app is the real one over real HTTP (werkzeug in a thread) on a real Redis; the release is
ticked by the real tick with our in-memory router and a local Prometheus (as tests/workers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.context import Context, set_context
from tests.support.browser import browser_page, served_app
from tests.support.fakes import FakePrometheus, FakeRouter, WebhookReceiver
from tests.support.gate_server import GateServer
from tests.support.gates import GATE_SECRET, SLACK_SECRET, events, make_ctx, tick_until, wait_for_approval
from tests.support.web import TOKEN

pytestmark = pytest.mark.e2e


@pytest.fixture
def ctx(
    redis_url: str, prom: FakePrometheus, router: FakeRouter, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Context]:
    monkeypatch.setenv("GATE_SECRET", GATE_SECRET)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + "/services/T000/B000/slack-url-secret-1234")
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    prom.healthy("5.1.0", "5.0.0")
    gate = GateServer(GATE_SECRET)
    context = make_ctx(redis_url, prom, router, gate.url)
    set_context(context)
    yield context
    set_context(None)
    context.prometheus.close()
    context.store.r.close()


@pytest.fixture
def web(ctx: Context) -> Iterator[str]:
    with served_app() as url:
        yield url


@pytest.fixture
def page() -> Iterator[object]:
    with browser_page() as pg:
        yield pg


def test_approve_button_approves_the_waiting_gate(ctx: Context, web: str, page) -> None:  # type: ignore[no-untyped-def]
    rid = wait_for_approval(ctx)
    page.goto(f"{web}/login?next=/releases/{rid}")
    page.fill("#login-token", TOKEN)
    page.locator('#login button[type="submit"]').click()
    page.wait_for_url(f"{web}/releases/{rid}")

    approve = page.locator('button[data-action="approve"]')
    page.wait_for_function("() => !document.querySelector('button[data-action=\"approve\"]').disabled", timeout=15_000)
    assert page.locator('button[data-action="resume"]').is_disabled()
    page.fill("#token", TOKEN)
    approve.click()
    page.wait_for_function(
        "() => document.getElementById('control-msg').textContent.includes('approved by')", timeout=15_000
    )
    assert page.locator("#control-msg").inner_text() == "gate 'qa' approved by api:dashboard."
    assert [e.data["by"] for e in events(ctx, rid, "approved")] == ["api:dashboard"]

    rel = tick_until(ctx, rid, lambda r: r.terminal)
    assert rel.state == "succeeded"
    page.wait_for_selector('body[data-state="succeeded"]', timeout=15_000)
    assert approve.is_disabled()
