"""Slow clients against the web process: do /healthz and real signed webhooks still answer?

N connections (200 by default) each send a request line and then one header line a second,
never finishing; when the server drops one, it is opened again at once, so N are held the whole
time. Meanwhile one request at a time, each on a new connection as a webhook sender's would be,
alternates `GET /healthz`, an HMAC-signed `POST /hooks/deploy` and a signed `POST /hooks/circleci`,
and their latencies are measured. Run for the serving setup in app/web/serving.py (gevent) and,
for comparison, the former one (gthread, 2 workers x 4 threads).

python -m benchmarks.slowloris [--connections 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

from app.cli.demo.stack import Process, free_port, start_redis, wait_until
from benchmarks.common import machine, percentile, table
from benchmarks.intake import CIRCLECI_SECRET, DEPLOY_SECRET, _circleci_body, environment

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 100.0
SETUPS = {
    "gevent (app/web/serving.py)": ["-c", str(REPO / "app" / "web" / "serving.py")],
    "gthread 2 workers x 4 threads (before)": ["--workers", "2", "--threads", "4", "--no-control-socket"],
}


class SlowClients:
    """`n` connections held open, each trickling header lines; reopened when the server drops them."""

    def __init__(self, port: int, n: int, gap: float = 1.0):
        self.port, self.n, self.gap = port, n, gap
        self.open = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _one(self) -> None:
        while not self._stop.is_set():
            writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.open += 1
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n")
                await writer.drain()
                while not self._stop.is_set():
                    await asyncio.sleep(self.gap)
                    if reader.at_eof():
                        break
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if writer is not None:
                    self.open -= 1
                    self.dropped += 1
                    writer.close()
            await asyncio.sleep(0.05)

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._one()) for _ in range(self.n)]
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[float, int]:
    """One request on a new connection: (milliseconds, status; 0 for no answer within 5 s)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000, status


def probes() -> dict[str, tuple[str, str, bytes | None, dict[str, str]]]:
    deploy = json.dumps({"service": "web", "version": "1.0.1"}).encode()
    circle = _circleci_body()
    return {
        "GET /healthz": ("GET", "/healthz", None, {}),
        "POST /hooks/deploy (HMAC-signed)": (
            "POST",
            "/hooks/deploy",
            deploy,
            {
                "Content-Type": "application/json",
                "X-Sluice-Signature": "sha256=" + hmac.new(DEPLOY_SECRET.encode(), deploy, hashlib.sha256).hexdigest(),
            },
        ),
        "POST /hooks/circleci (signature v1)": (
            "POST",
            "/hooks/circleci",
            circle,
            {
                "Content-Type": "application/json",
                "circleci-event-type": "job-completed",
                "circleci-signature": "v1=" + hmac.new(CIRCLECI_SECRET.encode(), circle, hashlib.sha256).hexdigest(),
            },
        ),
    }


def measure(port: int, seconds: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    latencies: dict[str, list[float]] = {name: [] for name in probes()}
    failures = dict.fromkeys(probes(), 0)
    end = time.time() + seconds
    while time.time() < end:
        for name, (method, path, body, headers) in probes().items():
            ms, status = _request(port, method, path, body, headers)
            latencies[name].append(ms)
            if not 200 <= status < 300:
                failures[name] += 1
        time.sleep(0.05)
    return latencies, failures


def run_setup(
    workdir: Path, name: str, args: list[str], env: dict[str, str], n: int, seconds: float
) -> list[list[str]]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args, "app:create_app()"]
    web = Process("web-" + name.split()[0], command, workdir, env=env).start()
    rows = []
    try:
        wait_until(lambda: _request(port, "GET", "/healthz", None, {})[1] == 200, 30, "web", web.proc, web.log)
        method, path, body, headers = probes()["POST /hooks/deploy (HMAC-signed)"]
        _request(port, method, path, body, headers)  # starts the release: later ones are duplicates
        quiet, _ = measure(port, 3)
        slow = SlowClients(port, n).start()
        time.sleep(3)  # let them all connect and start trickling
        held_before = slow.open
        loaded, failures = measure(port, seconds)
        held_after, dropped = slow.open, slow.dropped
        slow.stop()
        for probe, values in loaded.items():
            over = sum(1 for v in values if v > GOAL_MS)
            rows.append(
                [
                    name,
                    probe,
                    f"{percentile(quiet[probe], 50):.1f}",
                    f"{held_before}..{held_after}",
                    str(len(values)),
                    f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f} / {max(values):.1f}",
                    f"{over} ({over / len(values):.0%})",
                    str(failures[probe]),
                    str(dropped),
                ]
            )
    finally:
        web.stop()
    return rows


def run(workdir: Path, connections: int = 200, seconds: float = 20.0) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    redis_proc, redis_url = start_redis(workdir)
    # The intake benchmark's environment: it also allows the untimed `X-Sluice-Signature` this
    # benchmark signs with (refused by default since signatures carry a timestamp).
    env = {**environment(workdir, redis_url), "PYTHONPATH": str(REPO)}
    rows: list[list[str]] = []
    try:
        for name, args in SETUPS.items():
            rows += run_setup(workdir, name, args, env, connections, seconds)
    finally:
        redis_proc.stop()
    headers = [
        "serving setup",
        "request",
        "quiet p50 ms",
        "slow connections held",
        "requests",
        f"with {connections} slow: p50 / p99 / max ms",
        f"over {GOAL_MS:.0f} ms",
        "non-2xx or no answer",
        "slow connections dropped by the server",
    ]
    return (
        table(headers, rows)
        + f"\n\n{connections} connections each sending a request line, then one header line a second, never "
        f"finishing (reopened when dropped); {seconds:.0f} s of requests, one at a time, each on a new connection. "
        "A request with no answer within 5 s counts as 5000 ms."
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slowloris")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-slowloris-"))
    try:
        print(f"- machine: {machine()}\n")
        print(run(workdir, args.connections, args.seconds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
