"""Local servers on loopback, in a folder of their own: Redis, Prometheus, HAProxy, gunicorn.

Used by `sluice demo` and by the integration tests, so that what the tests exercise is
what a user runs. Every server binds 127.0.0.1 only and is stopped by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from integrations.haproxy.segments import SegmentMap


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if not path:
        raise RuntimeError(
            f"{name} is not installed: run `make setup` (or apt-get install -y --no-install-recommends {package})"
        )
    return path


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Process:
    """A child process with its log file; `stop()` ends its whole process group."""

    name: str
    args: list[str]
    workdir: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)
    # Where this run's lines begin in `log` (appended across restarts): what it logged since it last started.
    log_start: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"{self.name}.log"

    def start(self) -> Process:
        env = {**os.environ, **(self.env or {})}
        with open(self.log, "ab") as out:
            self.log_start = out.tell()
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def start_redis(workdir: Path, persistent: bool = False) -> tuple[Process, str]:
    """Redis on a free loopback port; `persistent` turns on AOF (in `workdir`), as production should."""
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    proc = Process(
        "redis",
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "yes" if persistent else "no",
            "--dir",
            str(workdir),
        ],
        workdir,
    ).start()
    wait_until(lambda: port_open(port), 15, "redis-server", proc.proc, proc.log)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_prometheus(
    workdir: Path,
    scrape_targets: dict[str, list[str]] | None = None,
    scrape_interval: str = "1s",
    storage: Path | None = None,
    extra_flags: list[str] | None = None,
) -> tuple[Process, str]:
    """Start Prometheus scraping `scrape_targets` ({job: ["127.0.0.1:port", ...]}) every interval."""
    binary = require_binary("prometheus", "prometheus")
    port = free_port()
    jobs = []
    for job, targets in (scrape_targets or {}).items():
        listed = ", ".join(repr(t) for t in targets)
        jobs.append(f"  - job_name: {job}\n    static_configs:\n      - targets: [{listed}]\n")
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        + ("scrape_configs:\n" + "".join(jobs) if jobs else "")
    )
    data = storage or (workdir / "prometheus-data")
    data.mkdir(exist_ok=True)
    proc = Process(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *(extra_flags or []),
        ],
        workdir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: requests.get(f"{url}/-/ready", timeout=1).status_code == 200,
        30,
        "prometheus",
        proc.proc,
        proc.log,
    )
    return proc, url


@dataclass(frozen=True)
class HAProxyBackend:
    name: str
    servers: dict[str, int]  # server (version) name -> port on 127.0.0.1
    weights: dict[str, int]  # initial weights


def start_haproxy(
    workdir: Path,
    backends: list[HAProxyBackend],
    timeout_server: str = "30s",
    backend_lines: list[str] | None = None,
    segment_maps: list[SegmentMap] | None = None,
) -> tuple[Process, str, dict[str, int]]:
    """Start HAProxy with one HTTP frontend per backend. Returns (process, admin socket, {backend: port}).

    `timeout_server` is HAProxy's `timeout server` (a slower answer is cut: the client gets a 504);
    `backend_lines` are added to every backend (the scenario suite adds a header naming the server);
    `segment_maps` add each map's `use-server` rule to its backend (the map file is created empty)."""
    binary = require_binary("haproxy", "haproxy")
    sock = workdir / "haproxy.sock"
    lines = [
        "global",
        f"  stats socket {sock} mode 600 level admin",
        "  maxconn 4096",
        "defaults",
        "  mode http",
        "  timeout connect 2s",
        "  timeout client 30s",
        f"  timeout server {timeout_server}",
        "  option http-keep-alive",
    ]
    ports = {}
    for b in backends:
        ports[b.name] = free_port()
        lines += [
            f"frontend fe_{b.name}",
            f"  bind 127.0.0.1:{ports[b.name]}",
            f"  default_backend {b.name}",
            f"backend {b.name}",
            "  balance roundrobin",
            "  option httpchk GET /healthz",
            *(f"  {line}" for line in backend_lines or []),
        ]
        for segment_map in segment_maps or []:
            if segment_map.backend == b.name:
                Path(segment_map.map).touch()
                lines.append(f"  {segment_map.rule()}")
        for server, port in b.servers.items():
            weight = b.weights.get(server, 0)
            lines.append(f"  server {server} 127.0.0.1:{port} weight {weight} check inter 1s")
    config = workdir / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    proc = Process("haproxy", [binary, "-db", "-f", str(config)], workdir).start()
    wait_until(
        lambda: sock.exists() and all(port_open(p) for p in ports.values()),
        15,
        "haproxy",
        proc.proc,
        proc.log,
    )
    return proc, str(sock), ports


def start_gunicorn(
    workdir: Path,
    name: str,
    app: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
    threads: int = 4,
    health_path: str = "/healthz",
) -> tuple[Process, int]:
    """Run a WSGI app (`module:callable()`) under gunicorn on a free loopback port."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "3",
        "--no-control-socket",  # gunicorn 27's control socket is one shared path per user
        app,
    ]
    proc = Process(name, args, workdir, env=env).start()
    wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}{health_path}", timeout=1).ok,
        30,
        name,
        proc.proc,
        proc.log,
    )
    return proc, port
