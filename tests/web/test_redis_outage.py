"""Redis goes away under the web app (issue 12): intake answers 503 with Retry-After (nothing was
stored, the sender must retry), never 500 nor 2xx; /readyz says not ready; when Redis is back,
the retried announcement starts the release."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.demo.stack import Process, port_open, start_redis
from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.web import create_app
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from tests.support.web import AUTH, TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """A redis-server of this test's own, to stop and start again on the same port."""
    proc, url = start_redis(tmp_path)
    try:
        yield proc, url
    finally:
        proc.stop()


@pytest.fixture
def ctx(own_redis: tuple[Process, str], prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    context = Context(config=parse_config(config_text()), redis_url=own_redis[1], prometheus_url=prom.url)
    context._routers["shop"] = FakeRouter()
    set_context(context)
    try:
        yield context
    finally:
        set_context(None)
        context.prometheus.close()
        context.store.r.close()


def test_intake_answers_503_with_retry_after_while_redis_is_down(ctx: Context, own_redis: tuple[Process, str]) -> None:
    proc, url = own_redis
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = create_app().test_client()
    assert client.get("/readyz").status_code == 200

    proc.stop()
    assert not port_open(port)
    for path, body in [
        ("/hooks/deploy", {"service": "web", "version": "1.1.0"}),
        ("/hooks/deploy", {"service": "web", "version": "1.1.0", "ci": {"provider": "circleci"}}),
    ]:
        resp = client.post(path, json=body, headers=AUTH)
        assert resp.status_code == 503, (resp.status_code, resp.get_data(as_text=True)[:300])
        assert int(resp.headers["Retry-After"]) > 0
        assert "Redis" in resp.get_json()["error"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "not ready"

    proc.start()
    deadline = time.monotonic() + 15
    while not port_open(port):
        assert time.monotonic() < deadline, "redis-server did not come back"
        time.sleep(0.05)
    deadline = time.monotonic() + 15
    while (ready := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, ready.get_json()
        time.sleep(0.1)
    resp = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH)
    assert resp.status_code == 202, resp.get_json()
    assert ctx.store.list_releases()[1] == 1


def test_a_version_being_stored_elsewhere_gets_503_with_retry_after(ctx: Context) -> None:
    """A dedup key without its release, too young to be dangling (app/store/release_records.py DANGLING_GRACE):
    another writer may be storing it, so the sender is asked to retry, not given a second release."""
    from app.store import DEDUP_TTL, keys

    ctx.store.r.set(keys.dedup(keys.deploy_dedup("shop", "web", "1.1.0")), "r-being-written", ex=DEDUP_TTL)
    resp = create_app().test_client().post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH)
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0, resp.get_json()
    assert ctx.store.list_releases()[1] == 0
