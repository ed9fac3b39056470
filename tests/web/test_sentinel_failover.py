"""Intake during a Sentinel failover (issue 12): while the master is dead and the sentinels have not yet
promoted the replica, a deploy notification is answered 503 with Retry-After (nothing stored, the
sender retries), never 500 nor 2xx; once the replica is promoted, the retried notification starts
exactly one release. Real redis-server and redis-sentinel processes; the web app in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.web import create_app
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from tests.support.sentinel import SentinelStack
from tests.support.web import AUTH, TOKEN

pytestmark = pytest.mark.integration
PASSWORD = "intake-failover-Pa55"
# Sentinels wait this long before calling the master down: longer than a request's retries through a
# dead master (app/store/connection.py, about 4.5 s), so the first requests fall inside the window.
DOWN_AFTER_MS = 10_000


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelStack]:
    stack = SentinelStack(tmp_path, password=PASSWORD, down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=20_000)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def ctx(sentinels: SentinelStack, prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    context = Context(config=parse_config(config_text()), redis_url=sentinels.url(), prometheus_url=prom.url)
    context._routers["shop"] = FakeRouter()
    set_context(context)
    try:
        yield context
    finally:
        set_context(None)
        context.prometheus.close()
        context.store.r.close()


def test_intake_answers_503_during_the_failover_then_one_release(
    ctx: Context, sentinels: SentinelStack, caplog: pytest.LogCaptureFixture
) -> None:
    client = create_app().test_client()
    body = {"service": "web", "version": "1.1.0"}
    assert client.get("/readyz").status_code == 200

    old = sentinels.kill_master()
    answers = []
    while True:
        resp = client.post("/hooks/deploy", json=body, headers=AUTH)
        answers.append(resp.status_code)
        assert resp.status_code in (503, 202), (resp.status_code, resp.get_data(as_text=True)[:300])
        if resp.status_code == 202:
            break
        assert int(resp.headers["Retry-After"]) > 0
        assert "Redis" in resp.get_json()["error"] and "nothing was stored" in resp.get_json()["error"]
        ready = client.get("/readyz")
        assert ready.status_code in (503, 200) and PASSWORD not in ready.get_data(as_text=True)
        assert len(answers) < 30, answers
    assert answers[0] == 503, answers  # the first one fell inside the window
    print(f"answers to the same deploy notification through the failover: {answers}")
    assert sentinels.wait_for_new_master(old) != old

    releases, total = ctx.store.list_releases()
    assert total == 1 and resp.get_json()["release"] == releases[0].id
    assert [e.type for e in ctx.store.events(releases[0].id)] == ["created"]
    again = client.post("/hooks/deploy", json=body, headers=AUTH)
    assert again.status_code == 200 and again.get_json()["release"] == releases[0].id, again.get_json()
    assert client.get("/readyz").status_code == 200
    assert PASSWORD not in caplog.text
