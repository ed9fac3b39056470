"""A running release whose router lost its weights: an HAProxy reload mid-release.

A reload resets HAProxy's runtime weights to its configuration file's (stable 100%). Before
the fix, Sluice never read them again once confirmed: the candidate got no traffic for the
rest of its step, and a good release was failed 181 s later for lack of evidence (found by
`make chaos`, docs/reliability.md). Real Redis, a real HAProxy reloaded the way an operator
does it (a new process with `-sf`), real backends answering its health checks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.cli.demo.stack import HAProxyBackend, Process, start_haproxy
from app.config_file.loader import parse_config
from app.context import Context
from app.release.control import control
from app.release.drift import drifted
from app.release.intake import start_release
from chaos.stack import reload_haproxy
from integrations.haproxy.router import HAProxyRouter, HAProxyRouterConfig
from integrations.haproxy.runtime import RuntimeClient
from tests.support.fakes import FakePrometheus, config_text
from workers.tick import TickKind, tick

pytestmark = pytest.mark.integration

SERVICE, STABLE, CANDIDATE = "cart", "3.0.0", "3.0.1"  # policy `hold`: holds at 10% without data


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[Path, list[Process], str]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Healthy) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = {STABLE: servers[0].server_address[1], CANDIDATE: servers[1].server_address[1]}
    proc, sock, _ = start_haproxy(tmp_path, [HAProxyBackend(SERVICE, ports, {STABLE: 100})])
    procs = [proc]
    try:
        yield tmp_path, procs, sock
    finally:
        for p in reversed(procs):
            p.stop()
        for server in servers:
            server.shutdown()


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, haproxy: tuple[Path, list[Process], str]) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = HAProxyRouter(HAProxyRouterConfig(type="haproxy", socket=haproxy[2], timeout=2))
    yield context
    context.prometheus.close()
    context.store.r.close()


def weights(sock: str) -> dict[str, int]:
    return {name: info["weight"] for name, info in RuntimeClient(sock).servers(SERVICE).items()}


def test_reload_mid_release_is_noticed_and_weights_are_set_again(
    ctx: Context, haproxy: tuple[Path, list[Process], str]
) -> None:
    workdir, procs, sock = haproxy
    rid = start_release(ctx, SERVICE, CANDIDATE).release.id
    release = ctx.store.get(rid)
    assert release is not None
    tick(ctx, rid, release.seq)  # starts: 90/10 at HAProxy
    assert weights(sock) == {STABLE: 90, CANDIDATE: 10}
    release = ctx.store.get(rid)
    assert release is not None and release.state == "running"
    assert tick(ctx, rid, release.seq).kind == TickKind.DECIDED  # holds (no data): nothing drifted yet
    assert "weights_drifted" not in [e.type for e in ctx.store.events(rid)]

    procs.append(reload_haproxy(workdir, procs[0], sock, "haproxy-reloaded"))
    assert weights(sock) == {STABLE: 100, CANDIDATE: 0}  # what the reload did

    release = ctx.store.get(rid)
    assert release is not None
    outcome = tick(ctx, rid, release.seq)

    assert outcome.kind == TickKind.DECIDED, outcome
    assert weights(sock) == {STABLE: 90, CANDIDATE: 10}
    drift = [e for e in ctx.store.events(rid) if e.type == "weights_drifted"]
    assert len(drift) == 1
    assert drift[0].message == (
        "router weights drifted: found 3.0.0: 100%, 3.0.1: 0%, wanted 3.0.0: 90%, 3.0.1: 10%; re-applied"
    )
    after = ctx.store.get(rid)
    assert after is not None and after.weights_applied and after.step == 0 and after.state == "running"
    # The step's clock is not restarted by the re-apply.
    assert after.step_started_at == release.step_started_at

    # Once restored, the next tick finds nothing to repair.
    tick(ctx, rid, after.seq)
    assert len([e for e in ctx.store.events(rid) if e.type == "weights_drifted"]) == 1


def test_drift_compares_every_version_the_router_knows() -> None:
    assert not drifted({STABLE: 90, CANDIDATE: 10}, {STABLE: 90, CANDIDATE: 10})
    assert not drifted({STABLE: 100, CANDIDATE: 0}, {STABLE: 100})  # a version not wanted is wanted at 0
    assert drifted({STABLE: 100, CANDIDATE: 0}, {STABLE: 90, CANDIDATE: 10})
    assert drifted({STABLE: 90, CANDIDATE: 0, "3.0.2": 10}, {STABLE: 90, CANDIDATE: 10})


def test_reload_mid_bake_is_repaired_too(
    redis_url: str, prom: FakePrometheus, haproxy: tuple[Path, list[Process], str]
) -> None:
    """After promotion a baking release still owns the traffic (docs/bake.md): a reload that puts
    HAProxy back on its configuration's stable (the previous version) is undone at the next tick."""
    workdir, procs, sock = haproxy
    text = config_text().replace(
        "  - name: hold\n    interval: 500ms\n", "  - name: hold\n    interval: 500ms\n    bake: 10m\n"
    )
    ctx = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=prom.url)
    ctx._routers["shop"] = HAProxyRouter(HAProxyRouterConfig(type="haproxy", socket=sock, timeout=2))
    prom.serve(CANDIDATE, 4000, errors=40)
    prom.serve(STABLE, 18000, errors=180)
    rid = start_release(ctx, SERVICE, CANDIDATE).release.id
    tick(ctx, rid, 0)
    # Nobody sends HAProxy requests here, so the judge would wait: promoted by hand, which bakes too.
    release = control(ctx, rid, "promote", actor="test")
    assert release.state == "baking", release.reason
    assert weights(sock) == {STABLE: 0, CANDIDATE: 100}

    procs.append(reload_haproxy(workdir, procs[0], sock, "haproxy-reloaded"))
    assert weights(sock) == {STABLE: 100, CANDIDATE: 0}
    tick(ctx, rid, release.seq)
    assert weights(sock) == {STABLE: 0, CANDIDATE: 100}
    assert [e.type for e in ctx.store.events(rid)].count("weights_drifted") == 1
    ctx.prometheus.close()
    ctx.store.r.close()
