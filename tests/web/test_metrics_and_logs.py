"""Sluice's own /metrics (written by workers into Redis, read by the web process) and its JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry.logs import JsonFormatter, ReleaseFilter
from app.web import create_app
from tests.support.web import AUTH, TOKEN, logged_in
from workers.deliver import run_delivery
from workers.tick import run_tick

pytestmark = pytest.mark.integration


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_count_what_workers_did(ctx):
    client = logged_in(create_app().test_client())
    rid = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).get_json()["release"]
    run_tick(rid, 0)
    run_tick(rid, 1)
    run_tick(rid, 1)  # stale: already decided
    for d in ctx.store.get(rid).hooks:
        run_delivery(d)
    m = scrape(client)
    assert m[("sluice_evaluations_total", (("check", "errors"), ("verdict", "pass")))] == 1
    assert m[("sluice_decisions_total", (("kind", "start"),))] == 1
    assert m[("sluice_ticks_total", (("result", "stale"),))] == 1
    assert m[("sluice_ticks_total", (("result", "decided"),))] == 2
    assert m[("sluice_tick_duration_seconds_count", ())] == 3
    assert m[("sluice_tick_lag_seconds_count", ())] == 2  # the stale tick is not one the release waited for
    assert m[("sluice_tick_lag_seconds_bucket", (("le", "+Inf"),))] == 2
    assert m[("sluice_hook_deliveries_total", (("hook", "ci"), ("outcome", "delivered")))] == 1
    assert m[("sluice_releases", (("state", "running"),))] == 1
    assert m[("sluice_queue_depth", (("queue", "scheduled"),))] >= 1
    assert m[("sluice_up", ())] == 1

    client.post(f"/api/v1/releases/{rid}/abort", headers=AUTH)
    m = scrape(client)
    assert m[("sluice_releases_finished_total", (("state", "aborted"),))] == 1
    assert m[("sluice_releases", (("state", "aborted"),))] == 1
    assert m[("sluice_releases", (("state", "running"),))] == 0


@pytest.fixture
def log_lines():
    """Every log line, as the JSON formatter writes it, at DEBUG."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ReleaseFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(x) for x in buf.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_release_work_is_logged_with_the_release_id_and_no_secret(ctx, log_lines, receiver):
    client = logged_in(create_app().test_client())
    rid = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH).get_json()["release"]
    run_tick(rid, 0)
    run_tick(rid, 1)
    ctx._routers["shop"].fail_next(1, retryable=True)  # a router warning inside the release's work
    run_tick(rid, 2)
    for d in ctx.store.get(rid).hooks:
        run_delivery(d)
    client.post(f"/api/v1/releases/{rid}/pause", headers={"Authorization": "Bearer wrong-token-xyz"})
    client.post(f"/api/v1/releases/{rid}/abort", headers=AUTH, json={"reason": f"token={TOKEN}"})
    logging.getLogger("sluice.test").warning("careless: Authorization: Bearer %s", TOKEN)

    lines = log_lines()
    release_lines = [x for x in lines if x["logger"] in ("sluice.engine", "sluice.tick", "sluice.deliver")]
    assert len(release_lines) >= 3, lines
    assert all(x.get("release_id") == rid for x in release_lines), release_lines
    assert any(x.get("decision") == "abort" for x in release_lines)
    text = "\n".join(json.dumps(x) for x in lines)
    assert TOKEN not in text and "hook-secret-value-55aa" not in text and "wrong-token-xyz" not in text
    assert "[redacted]" in text


@pytest.mark.parametrize(("level", "debug_shown"), [("DEBUG", True), ("warning", False)])
def test_log_level_comes_from_the_environment(level: str, debug_shown: bool):
    code = (
        "import logging; from app.telemetry.logs import configure_logging, release_context; configure_logging(); "
        "log = logging.getLogger('sluice.x')\n"
        "with release_context('r-1'):\n    log.debug('quiet'); log.warning('loud')"
    )
    env = {**os.environ, "SLUICE_LOG_LEVEL": level}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    lines = [json.loads(x) for x in out.stderr.splitlines()]
    assert [x["msg"] for x in lines] == (["quiet", "loud"] if debug_shown else ["loud"])
    assert all(x["release_id"] == "r-1" and x["level"] in ("debug", "warning") for x in lines)
