"""Gated policies and helpers shared by the gate tests (tests/workers/test_gates.py, tests/web)."""

from __future__ import annotations

import time
from typing import Any

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Release
from app.release.intake import start_release
from tests.support.fakes import FakePrometheus, FakeRouter
from workers.tick import tick

GATE_SECRET = "gate-signing-secret-7d1c"
SLACK_SECRET = "slack-signing-secret-0b9e"


def config(gate_url: str, unreachable: str = "hold") -> str:
    webhook = (
        f"{{name: freeze, type: webhook, url: '{gate_url}/freeze', secret_env: GATE_SECRET, timeout: 1s, "
        f"on_unreachable: {unreachable}, unreachable_timeout: 3s}}"
    )
    return f"""
prometheus: {{url: "http://127.0.0.1:1", timeout: 2s}}
applications:
  - name: shop
    namespace: prod
    router: {{type: haproxy, socket: "127.0.0.1:1"}}
    services:
      - {{name: web, policy: first-step-gate, stable_version: 1.0.0}}
      - {{name: api, policy: second-step-gate, stable_version: 2.0.0}}
      - {{name: admin, policy: approval, stable_version: 5.0.0}}
policies:
  - name: first-step-gate
    interval: 500ms
    judge: {{warmup: 0s}}
    steps:
      - {{weight: 10, gates: [{webhook}]}}
      - {{weight: 100}}
  - name: second-step-gate
    interval: 500ms
    judge: {{warmup: 0s}}
    steps:
      - {{weight: 10}}
      - {{weight: 100, gates: [{webhook}]}}
  - name: approval
    interval: 500ms
    judge: {{warmup: 0s}}
    steps: [{{weight: 20}}, {{weight: 100}}]
    gates_before_promotion: [{{name: qa, type: manual}}]
slack: {{approvers: [U024BE7LH]}}
hooks:
  - {{name: chat, type: slack, on: [approval_requested, succeeded], url_env: SLACK_WEBHOOK_URL}}
"""


def make_ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter, gate_url: str, **kw: str) -> Context:
    ctx = Context(config=parse_config(config(gate_url, **kw)), redis_url=redis_url, prometheus_url=prom.url)
    ctx._routers["shop"] = router
    return ctx


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def tick_until(ctx: Context, rid: str, done: Any, timeout: float = 15.0) -> Release:
    """Tick (as the scheduler would, with the release's seq) until `done(release)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if done(rel):
            return rel
        time.sleep(0.1)
    raise AssertionError(f"condition not reached: {get(ctx, rid)}")


def events(ctx: Context, rid: str, kind: str | None = None) -> list[Any]:
    return [e for e in ctx.store.events(rid) if kind is None or e.type == kind]


# --- webhook gates -----------------------------------------------------------------------------------
def wait_for_approval(ctx: Context) -> str:
    rid = start_release(ctx, "admin", "5.1.0").release.id
    rel = tick_until(ctx, rid, lambda r: r.reason == "waiting for approval: qa")
    assert rel.state == "running" and rel.step == 1  # judged at 100%, not yet promoted
    return rid
