"""The router's own view of each version: `show stat` counters from a real HAProxy 2.6 in front
of real servers (the demo service under gunicorn, and tiny Python servers that time out).

Each test snapshots the backend, sends real requests through HAProxy, snapshots again and
checks `server_delta` against what the client saw. Requests are pinned to a server with
`use-server` on an `x-version` header, so each server's counters are exact. The reload test
runs last: it resets every counter.
"""

from __future__ import annotations

import csv
import signal
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cli.demo.stack import Process, free_port, port_open, require_binary, start_gunicorn, wait_until
from integrations.haproxy.runtime import RuntimeClient
from integrations.haproxy.stats import (
    BackendStats,
    ServerStats,
    backend_delta,
    parse_show_stat,
    read_backend_stats,
    read_process,
    server_delta,
)
from integrations.routers.interface import RouterError

pytestmark = pytest.mark.integration

BACKEND = "shop"
SERVER_TIMEOUT_S = 1.0

SLEEPER = textwrap.dedent(
    """
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path != "/healthz":
                time.sleep(float(sys.argv[2]))
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # HAProxy gave up on us already

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@dataclass
class Stack:
    runtime: RuntimeClient
    url: str
    haproxy: Process
    servers: dict[str, Process]

    def snapshot(self, with_process: bool = False) -> BackendStats:
        return read_backend_stats(self.runtime, BACKEND, with_process=with_process)

    def send(self, version: str, n: int, parallel: int = 1) -> Counter[int]:
        def one(_: int) -> int:
            return requests.get(self.url, headers={"x-version": version}, timeout=10).status_code

        with ThreadPoolExecutor(parallel) as pool:
            return Counter(pool.map(one, range(n)))

    def backend_line(self) -> dict[str, str]:
        lines = [line for line in self.runtime.run(f"show stat {BACKEND} 2 -1").splitlines() if line.strip()]
        return next(csv.DictReader([lines[0][2:], *lines[1:]]))


def _start_haproxy(workdir: Path, ports: dict[str, int], checked: set[str]) -> tuple[Process, str, int]:
    sock, port = workdir / "haproxy.sock", free_port()
    servers = []
    for name, server_port in ports.items():
        # `crash` falls after 3 failed checks 500 ms apart: time for requests to find it dead first.
        check = " check inter 500ms fall 3 rise 1" if name == "crash" else " check inter 300ms fall 2 rise 1"
        check = check if name in checked else ""
        weight = 100 if name == "stable" else 0
        servers.append(f"  use-server {name} if {{ req.hdr(x-version) -m str {name} }}")
        servers.append(f"  server {name} 127.0.0.1:{server_port} weight {weight}{check}")
    config = workdir / "haproxy.cfg"
    config.write_text(
        "\n".join(
            [
                "global",
                f"  stats socket {sock} mode 600 level admin",
                "defaults",
                "  mode http",
                "  timeout connect 500ms",
                "  timeout client 10s",
                f"  timeout server {int(SERVER_TIMEOUT_S * 1000)}ms",
                "  retries 1",
                "frontend fe",
                f"  bind 127.0.0.1:{port}",
                f"  default_backend {BACKEND}",
                f"backend {BACKEND}",
                "  balance roundrobin",
                "  option httpchk GET /healthz",
                *sorted(servers, key=lambda line: not line.startswith("  use-server")),
            ]
        )
        + "\n"
    )
    # Master-worker mode, as a packaged HAProxy runs: SIGUSR2 to the master reloads.
    proc = Process("haproxy", [require_binary("haproxy", "haproxy"), "-W", "-db", "-f", str(config)], workdir)
    proc.start()
    wait_until(lambda: sock.exists() and port_open(port), 15, "haproxy", proc.proc, proc.log)
    return proc, str(sock), port


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("haproxy-stats")
    started: list[Process] = []
    try:
        servers: dict[str, Process] = {}
        ports: dict[str, int] = {}
        for name, error_rate in (("stable", "0"), ("errors", "0.3"), ("crash", "0")):
            env = {"DEMO_SERVICE": BACKEND, "DEMO_VERSION": name, "DEMO_LATENCY_MS": "0", "DEMO_ERROR_RATE": error_rate}
            proc, ports[name] = start_gunicorn(workdir, name, "app.cli.demo.service:create_app()", env=env, threads=4)
            servers[name] = proc
            started.append(proc)
        script = workdir / "sleeper.py"
        script.write_text(SLEEPER)
        ports["slow"] = free_port()
        slow = Process("slow", [sys.executable, str(script), str(ports["slow"]), "3"], workdir).start()
        started.append(slow)
        servers["slow"] = slow
        wait_until(lambda: port_open(ports["slow"]), 15, "sleeper", slow.proc, slow.log)
        ports["refused"] = free_port()  # nothing listens there
        haproxy, sock, port = _start_haproxy(workdir, ports, checked={"stable", "errors", "crash", "slow"})
        started.append(haproxy)
        stack = Stack(RuntimeClient(sock), f"http://127.0.0.1:{port}/", haproxy, servers)
        # A server starts "UP 1/3" (up, but one failed check from going down) until checks pass.
        checked = ("stable", "errors", "crash", "slow")
        wait_until(lambda: all(stack.snapshot().servers[s].status == "UP" for s in checked), 10, "health checks")
        yield stack
    finally:
        for proc in reversed(started):
            proc.stop()


def test_one_snapshot_has_every_server_parsed_by_name(stack: Stack):
    snap = stack.snapshot()

    assert list(snap.servers) == ["stable", "errors", "crash", "slow", "refused"]
    stable = snap.servers["stable"]
    assert stable.backend == BACKEND and stable.status == "UP" and stable.weight == 100
    assert snap.servers["refused"].status == "no check"
    assert snap.servers["refused"].chkdown == 0  # empty in the CSV (no checks): read as 0
    assert stable.req_tot is not None  # HAProxy 2.6 reports it for servers
    # The backend's iid is accepted too, and gives the same servers.
    iid = stack.backend_line()["iid"]
    assert list(parse_show_stat(stack.runtime.run(f"show stat {iid} 4 -1"), BACKEND)) == list(snap.servers)
    with pytest.raises(RouterError, match="no backend"):
        read_backend_stats(stack.runtime, "nosuch")


def test_app_5xx_are_counted_on_the_server_line(stack: Stack):
    before = stack.snapshot()
    seen = stack.send("errors", 100, parallel=4)
    delta = server_delta(before.servers["errors"], stack.snapshot().servers["errors"])

    assert seen[500] == 30 and seen[200] == 70  # the demo fails exactly 30% of its first 100
    assert (delta.requests, delta.http_2xx, delta.http_5xx) == (100, 70, 30)
    assert delta.proxy_errors == 0 and delta.failed == 30
    assert not delta.reset and not delta.currently_down and delta.down_transitions == 0


def test_server_timeout_is_a_proxy_error_of_that_server_not_its_5xx(stack: Stack):
    before, backend_before = stack.snapshot(), int(stack.backend_line()["hrsp_5xx"])
    started = time.monotonic()
    seen = stack.send("slow", 3, parallel=3)
    after = stack.snapshot()
    delta = server_delta(before.servers["slow"], after.servers["slow"])

    assert seen == Counter({504: 3})
    assert time.monotonic() - started < 3  # cut by `timeout server`, not by the sleeper
    assert delta.response_errors == 3 and delta.proxy_errors == 3 and delta.failed == 3
    assert delta.http_5xx == 0  # HAProxy's 504 is not in the server's hrsp_5xx ...
    assert int(stack.backend_line()["hrsp_5xx"]) - backend_before == 3  # ... but in the backend's
    assert delta.requests == 3 and delta.connection_errors == 0 and delta.server_aborts == 0
    assert after.servers["slow"].req_tot == before.servers["slow"].req_tot  # no response received


def test_refused_connection_is_econ_with_retries(stack: Stack):
    before = stack.snapshot()
    seen = stack.send("refused", 4)
    delta = server_delta(before.servers["refused"], stack.snapshot().servers["refused"])

    assert seen == Counter({503: 4})
    assert delta.connection_errors == 4 and delta.proxy_errors == 4 and delta.requests == 4
    assert delta.retries == 4  # `retries 1`: one retry per request
    assert delta.http_5xx == 0 and delta.response_errors == 0


def test_killed_server_shows_connection_errors_then_down(stack: Stack):
    before = stack.snapshot()
    assert before.servers["crash"].status == "UP"
    stack.servers["crash"].kill()
    seen = stack.send("crash", 2, parallel=2)  # before the checks notice (1 to 1.5 s)
    wait_until(lambda: stack.snapshot().servers["crash"].down, 10, "crash marked DOWN")
    after_down = stack.snapshot()
    rerouted = stack.send("crash", 5)  # a DOWN server is not chosen: use-server falls back to stable
    delta = server_delta(before.servers["crash"], stack.snapshot().servers["crash"])

    # Refused (503, `econ`); or 502 (`eresp`) when HAProxy had reused an idle keep-alive
    # connection that the dead server's kernel reset: then `eresp` can count more than one per
    # request (seen: 4 for 2 requests), so the counts are at least what the client saw.
    assert seen[502] + seen[503] == 2, seen
    assert delta.connection_errors == seen[503], delta
    assert (delta.response_errors >= 1) == (seen[502] >= 1), delta
    assert delta.proxy_errors >= 2 and delta.requests >= 2 and delta.failed >= 2
    assert delta.down_transitions == 1 and delta.failed_checks >= 2
    assert delta.currently_down and delta.status.startswith("DOWN")
    assert rerouted == Counter({200: 5})
    assert after_down.servers["crash"].econ == stack.snapshot().servers["crash"].econ


def test_reload_resets_counters_and_the_delta_says_so(stack: Stack):
    stack.send("errors", 10)
    before = stack.snapshot(with_process=True)
    assert before.servers["errors"].stot >= 110
    old_process = before.process
    assert stack.haproxy.proc is not None
    stack.haproxy.proc.send_signal(signal.SIGUSR2)  # reload, as `systemctl reload haproxy` does
    wait_until(lambda: read_process(stack.runtime) != old_process, 10, "haproxy reload")
    wait_until(lambda: stack.snapshot().servers["errors"].status == "UP", 10, "errors up after reload")

    seen = stack.send("errors", 20)
    after = stack.snapshot(with_process=True)
    delta = server_delta(before.servers["errors"], after.servers["errors"])

    assert delta.reset  # the counters went down
    assert delta.requests == 20 and delta.http_2xx + delta.http_5xx == 20
    assert delta.http_5xx == seen[500]
    # A reset the counters cannot show (stable's new counts may exceed its old ones) is
    # caught by comparing processes.
    by_process = backend_delta(before, after)
    assert after.process != old_process and all(d.reset for d in by_process.values())
    assert by_process["errors"] == delta


def test_delta_is_pure_and_reads_a_reset_from_any_counter():
    def server(**counts: int) -> ServerStats:
        zero = dict.fromkeys(
            ["stot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "econ", "eresp",
             "cli_abrt", "srv_abrt", "chkfail", "chkdown", "lastchg", "downtime", "wretr", "wredis"],
            0,
        )  # fmt: skip
        return ServerStats(backend="b", name="s", status="UP", weight=1, **{**zero, **counts})

    # A body cut mid-way counts once as a proxy error (eresp and srv_abrt both move) and as its status.
    cut = server_delta(server(), server(hrsp_2xx=5, eresp=2, srv_abrt=2, econ=1))
    assert (cut.requests, cut.proxy_errors, cut.failed, cut.reset) == (6, 3, 3, False)
    # New server since the last snapshot: counts from zero, no reset.
    assert server_delta(None, server(hrsp_4xx=3)).http_4xx == 3
    # Reset: one counter went down; the new values are the counts since the reset.
    reset = server_delta(server(hrsp_2xx=50, chkdown=3), server(hrsp_2xx=60, chkdown=1))
    assert reset.reset and reset.http_2xx == 60 and reset.down_transitions == 1
