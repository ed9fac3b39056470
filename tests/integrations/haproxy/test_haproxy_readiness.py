"""Ready before shift on a real HAProxy: a release does not start while the candidate's server is in
MAINT or DOWN in `show stat`; it starts once the server is UP, and fails at ready_timeout if it never
is. Real requests through HAProxy's frontend show who answered; Redis is real; ticks run by hand."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cli.demo.stack import HAProxyBackend, Process, start_gunicorn, start_haproxy
from app.config_file.loader import parse_config
from app.context import Context
from app.release.intake import start_release
from integrations.haproxy.runtime import RuntimeClient
from tests.support.fakes import FakePrometheus
from workers.tick import tick

pytestmark = pytest.mark.integration

SERVICE = "shop"
STABLE, CANDIDATE, NEVER_UP = "3.0.0", "3.1.0", "3.2.0"
CONFIG = """
prometheus: {{url: "http://127.0.0.1:1", timeout: 2s}}
applications:
  - name: store
    router: {{type: haproxy, socket: "{socket}"}}
    services:
      - {{name: {service}, policy: canary, stable_version: {stable}}}
policies:
  - name: canary
    interval: 500ms
    ready_timeout: 1s
    judge: {{warmup: 0s}}
    steps: [{{weight: 10}}, {{weight: 100}}]
    checks:
      - {{name: errors, type: error_rate, max: 0.05}}
"""


@dataclass
class Stack:
    socket: str
    runtime: RuntimeClient
    url: str

    def versions(self, n: int = 40) -> Counter[str]:
        seen: Counter[str] = Counter()
        with requests.Session() as session:
            for _ in range(n):
                answer = session.get(self.url, timeout=5)
                assert answer.status_code == 200, answer.text
                seen[answer.json()["version"]] += 1
        return seen

    def status(self, server: str) -> str:
        return self.runtime.servers(SERVICE)[server]["status"]

    def wait_status(self, server: str, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while not self.status(server).startswith(prefix) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.status(server).startswith(prefix), self.status(server)
        return self.status(server)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("haproxy-readiness")
    started: list[Process] = []
    try:
        ports: dict[str, int] = {}
        for version in (STABLE, CANDIDATE):
            proc, ports[version] = start_gunicorn(
                workdir,
                f"demo-{version}",
                "app.cli.demo.service:create_app()",
                env={"DEMO_SERVICE": SERVICE, "DEMO_VERSION": version, "DEMO_LATENCY_MS": "0"},
                threads=2,
            )
            started.append(proc)
        ports[NEVER_UP] = closed_port()  # nothing listens: its health checks fail, HAProxy marks it DOWN
        haproxy, sock, fe_ports = start_haproxy(
            workdir, [HAProxyBackend(SERVICE, servers=ports, weights={STABLE: 100})]
        )
        started.append(haproxy)
        yield Stack(sock, RuntimeClient(sock), f"http://127.0.0.1:{fe_ports[SERVICE]}/")
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture
def ctx(stack: Stack, redis_url: str, prom: FakePrometheus) -> Iterator[Context]:
    prom.default = 0.0
    text = CONFIG.format(socket=stack.socket, service=SERVICE, stable=STABLE)
    context = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=prom.url)
    yield context
    context.prometheus.close()
    context.store.r.close()


def _tick(ctx: Context, rid: str) -> str:
    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


def test_a_candidate_server_in_maint_holds_the_start_until_it_is_up(stack: Stack, ctx: Context) -> None:
    stack.runtime.run(f"set server {SERVICE}/{CANDIDATE} state maint")
    stack.wait_status(CANDIDATE, "MAINT")
    try:
        rid = start_release(ctx, SERVICE, CANDIDATE).release.id
        out = _tick(ctx, rid)
        assert out == f"hold: waiting for {CANDIDATE} to be ready: HAProxy {SERVICE}/{CANDIDATE}: MAINT", out
        assert _tick(ctx, rid).startswith("hold: waiting for")
        assert stack.runtime.get_weight(SERVICE, CANDIDATE) == 0
        assert set(stack.versions()) == {STABLE}  # no request reached the candidate
        rel = ctx.store.get(rid)
        assert rel is not None and rel.state == "pending"
    finally:
        stack.runtime.run(f"set server {SERVICE}/{CANDIDATE} state ready")
    stack.wait_status(CANDIDATE, "UP")

    assert _tick(ctx, rid).startswith("start")
    assert stack.runtime.get_weight(SERVICE, STABLE) == 90 and stack.runtime.get_weight(SERVICE, CANDIDATE) == 10
    assert CANDIDATE in stack.versions(60)
    holds = [e.message for e in ctx.store.events(rid) if e.type == "hold"]
    assert holds == [f"waiting for {CANDIDATE} to be ready: HAProxy {SERVICE}/{CANDIDATE}: MAINT"]
    stack.runtime.set_weight(SERVICE, CANDIDATE, 0)  # leave the module's HAProxy as found
    stack.runtime.set_weight(SERVICE, STABLE, 100)


def test_a_candidate_server_that_stays_down_fails_the_release_at_ready_timeout(stack: Stack, ctx: Context) -> None:
    stack.wait_status(NEVER_UP, "DOWN")
    rid = start_release(ctx, SERVICE, NEVER_UP).release.id
    out = _tick(ctx, rid)
    assert out.startswith(f"hold: waiting for {NEVER_UP} to be ready: HAProxy {SERVICE}/{NEVER_UP}: DOWN"), out
    time.sleep(1.05)
    out = _tick(ctx, rid)
    assert out.startswith(f"fail: waiting for {NEVER_UP} to be ready: HAProxy {SERVICE}/{NEVER_UP}: DOWN"), out
    assert "(ready_timeout)" in out
    rel = ctx.store.get(rid)
    assert rel is not None and rel.state == "failed"
    assert stack.runtime.get_weight(SERVICE, NEVER_UP) == 0 and stack.runtime.get_weight(SERVICE, STABLE) == 100
    assert set(stack.versions()) == {STABLE}
