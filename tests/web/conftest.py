"""A Sluice web app on a real Redis, with HTTP-level fakes for Prometheus and the router."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from tests.support.fakes import FakePrometheus, FakeRouter, WebhookReceiver, config_text
from tests.support.web import TOKEN


@pytest.fixture
def ctx(redis_url: str, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-value-55aa")
    prom = FakePrometheus().start()
    prom.healthy("1.1.0", "1.0.0")  # enough evidence for web's steps to pass
    hooks = (
        f"  - {{name: ci, type: webhook, on: [started, failed, aborted, succeeded], url: {receiver.url},"
        " secret_env: HOOK_SECRET}\n"
    )
    context = Context(config=parse_config(config_text(hooks)), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = FakeRouter()
    set_context(context)
    try:
        yield context
    finally:
        set_context(None)
        context.prometheus.close()
        context.store.r.close()
        prom.stop()
