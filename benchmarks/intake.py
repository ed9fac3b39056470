"""Intake: signed webhooks under gunicorn, against a bare Flask handler with the same gunicorn settings.

Both are served the way users serve Sluice: `gunicorn -c app/web/serving.py` (gevent workers,
WEB_CONCURRENCY 2, access log on). Load comes from `hey` on loopback. Each endpoint and the
baseline are run alternately, in rounds, in the same run, so that the ratio is measured side by
side on the same noise.

`/hooks/deploy` is signed with the untimed `X-Sluice-Signature` (allowed here with
SLUICE_ALLOW_UNTIMED_SIGNATURE=1): `hey` sends the same headers every time, and a Standard
Webhooks signature's `webhook-id` is accepted once (each further copy is a refused replay). The
signed path differs by that one once-only claim (a Redis SET NX).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app.cli.demo.stack import Process, free_port, require_binary, start_redis, wait_until
from benchmarks.common import percentile, table

REPO = Path(__file__).resolve().parents[1]
DEPLOY_SECRET = "bench-deploy-secret-4b7e1d9a0c3f6e2b"  # 32+ characters: the web refuses weaker
CIRCLECI_SECRET = "bench-circleci-secret-8d2f5a7c1e9b3d6f"
TOKEN = "bench-token-0e6c9a2f4d8b1e7c3a5f9d2b"
GUNICORN_WORKERS = 2
CONFIG = """
applications:
  - name: bench
    router: {type: haproxy, socket: /nonexistent/haproxy.sock}
    services:
      - {name: web, stable_version: "1.0.0", policy: p}
policies:
  - name: p
    steps: [{weight: 10, duration: 1h}, {weight: 100}]
"""
# Appended when this Sluice has the CircleCI receiver (its config section must then validate).
CIRCLECI_CONFIG = """
circleci:
  projects:
    - slug: gh/acme/web
      deploys:
        - {job: deploy, service: web, version: "1.0.{pipeline.number}"}
"""


def bench_config() -> str:
    from app.config_file.loader import ConfigError, parse_config

    try:
        parse_config(CONFIG + CIRCLECI_CONFIG)
        return CONFIG + CIRCLECI_CONFIG
    except ConfigError:
        return CONFIG


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def hey(
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
    qps_per_worker: float | None = None,
) -> Load:
    binary = require_binary("hey", "hey")
    body_file = Path("/tmp") / f"sluice-bench-body-{os.getpid()}.json"
    body_file.write_bytes(body)
    args = [
        binary,
        "-z",
        f"{seconds}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-D",
        str(body_file),
        "-o",
        "csv",
    ]
    if qps_per_worker:
        args += ["-q", f"{qps_per_worker:.1f}"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    latencies = [float(r["response-time"]) * 1000 for r in rows]
    errors = sum(1 for r in rows if not r["status-code"].startswith("2"))
    span = max(float(r["offset"]) for r in rows) if rows else seconds
    return Load(len(rows) / max(span, 1e-9), percentile(latencies, 50), percentile(latencies, 99), errors)


def _circleci_body() -> bytes:
    return json.dumps(
        {
            "id": "3888f21b-eaa7-38e3-8f3d-75a63bba8895",
            "type": "job-completed",
            "happened_at": "2026-11-26T08:00:00Z",
            "webhook": {"id": "w", "name": "sluice"},
            "project": {"id": "p", "name": "other", "slug": "gh/acme/other"},
            "organization": {"id": "o", "name": "acme"},
            "pipeline": {
                "id": "pl",
                "number": 371,
                "created_at": "2026-11-26T07:59:00Z",
                "trigger": {"type": "webhook"},
                "vcs": {"revision": "abc", "branch": "main"},
            },
            "workflow": {
                "id": "wf",
                "name": "build",
                "created_at": "2026-11-26T07:59:00Z",
                "stopped_at": "2026-11-26T08:00:00Z",
                "url": "https://app.circleci.com/x",
            },
            "job": {
                "id": "j",
                "name": "unit-tests",
                "number": 1,
                "status": "success",
                "started_at": "2026-11-26T07:59:10Z",
                "stopped_at": "2026-11-26T07:59:50Z",
            },
        }
    ).encode()


def endpoints() -> dict[str, tuple[str, bytes, dict[str, str]]]:
    deploy = json.dumps({"service": "web", "version": "1.0.1"}).encode()
    circle = _circleci_body()
    return {
        "POST /hooks/deploy (HMAC-signed; duplicate of a running release)": (
            "/hooks/deploy",
            deploy,
            {"X-Sluice-Signature": "sha256=" + hmac.new(DEPLOY_SECRET.encode(), deploy, hashlib.sha256).hexdigest()},
        ),
        "POST /hooks/circleci (signature v1; job of another project: ignored)": (
            "/hooks/circleci",
            circle,
            {
                "circleci-event-type": "job-completed",
                "circleci-signature": "v1=" + hmac.new(CIRCLECI_SECRET.encode(), circle, hashlib.sha256).hexdigest(),
            },
        ),
    }


def serve(workdir: Path, name: str, app: str, env: dict[str, str], tree: Path = REPO) -> tuple[Process, int]:
    """`app` under gunicorn with Sluice's serving configuration (gevent), on a free loopback port;
    `tree`: the checkout it is served from (another one for a before/after run)."""
    port = free_port()
    serving = tree / "app" / "web" / "serving.py"
    args = [sys.executable, "-m", "gunicorn", "-c", str(serving), "--bind", f"127.0.0.1:{port}", app]
    env = {**env, "WEB_CONCURRENCY": str(GUNICORN_WORKERS), "PYTHONPATH": str(tree)}
    proc = Process(name, args, workdir, env=env).start()
    url = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: requests.get(url, timeout=1).ok, 30, name, proc.proc, proc.log)
    return proc, port


HEADER = [
    "endpoint",
    "Sluice req/s (saturated)",
    "bare Flask req/s",
    "ratio (median [min..max])",
    "saturated p50 / p99 ms",
    "at half the saturating rate: p50 / p99 ms",
    "non-2xx",
]


def _ratio(ours: list[Load], base: list[Load]) -> str:
    ratios = [o.rps / b.rps for o, b in zip(ours, base, strict=True)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]"


def measure(
    ports: dict[str, int], path: str, body: bytes, headers: dict[str, str], seconds: float, rounds: int
) -> dict[str, list[Load]]:
    """Each server (`ports`: name -> port) loaded in turn, round after round, so all see the same noise."""
    loads: dict[str, list[Load]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, port in ports.items():
            loads[name].append(hey(f"http://127.0.0.1:{port}{path}", body, headers, seconds, 16))
    return loads


def _row(name: str, loads: dict[str, list[Load]], half: Load) -> list[str]:
    ours, base = loads["sluice"], loads["bare"]
    row = [
        name,
        f"{statistics.median(o.rps for o in ours):.0f}",
        f"{statistics.median(b.rps for b in base):.0f}",
        _ratio(ours, base),
        f"{statistics.median(o.p50_ms for o in ours):.1f} / {statistics.median(o.p99_ms for o in ours):.1f}",
        f"{half.rps:.0f} req/s: {half.p50_ms:.1f} / {half.p99_ms:.1f}",
        str(sum(o.errors for o in ours) + half.errors),
    ]
    if "before" in loads:
        row.insert(4, _ratio(loads["before"], base))
    return row


def run(workdir: Path, seconds: float = 6.0, rounds: int = 3, before: Path | None = None) -> str:
    """`before`: another checkout of Sluice (e.g. `git worktree add --detach /tmp/before main`), served
    beside this one in the same rounds: its ratio to bare Flask gets a column."""
    procs: list[Process] = []
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        redis_proc, redis_url = start_redis(workdir)
        procs.append(redis_proc)
        config = workdir / "sluice.yaml"
        config.write_text(bench_config())
        env = {
            "SLUICE_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "SLUICE_API_TOKEN": TOKEN,
            "SLUICE_DEPLOY_SECRET": DEPLOY_SECRET,
            "CIRCLECI_WEBHOOK_SECRET": CIRCLECI_SECRET,
            "SLUICE_LOG_LEVEL": "WARNING",
            "SLUICE_INTAKE_RATE": "1000000 per minute",  # throughput from one address, not the rate limit
            "SLUICE_ALLOW_UNTIMED_SIGNATURE": "1",  # see the module's docstring
        }
        ports: dict[str, int] = {}
        for name, app, tree in [
            ("sluice", "app:create_app()", REPO),
            ("bare", "benchmarks.bare_app:create_app()", REPO),
            *([("before", "app:create_app()", before)] if before else []),
        ]:
            proc, ports[name] = serve(workdir, f"bench-{name}", app, env, tree)
            procs.append(proc)
        rows = []
        for name, (path, body, headers) in endpoints().items():
            first = requests.post(
                f"http://127.0.0.1:{ports['sluice']}{path}",
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=10,
            )
            if first.status_code == 404:
                rows.append([name, "endpoint not available", "", "", "", "", ""])
                continue
            first.raise_for_status()
            loads = measure(ports, path, body, headers, seconds, rounds)
            sat = statistics.median(o.rps for o in loads["sluice"])
            url = f"http://127.0.0.1:{ports['sluice']}{path}"
            rows.append(_row(name, loads, hey(url, body, headers, seconds, 8, qps_per_worker=sat / 2 / 8)))
        header = HEADER if before is None else [*HEADER[:4], "before: ratio", *HEADER[4:]]
        return (
            table(header, rows)
            + f"\n\ngunicorn -c app/web/serving.py (gevent, {GUNICORN_WORKERS} workers, access log) for both; "
            f"hey -c 16, {rounds} alternating rounds of {seconds:.0f} s each; then hey -c 8 rate-limited to half the "
            "median saturating rate."
        )
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(workdir / "prometheus-data", ignore_errors=True)


if __name__ == "__main__":
    import tempfile

    print(
        run(
            Path(tempfile.mkdtemp()),
            seconds=float(os.environ.get("BENCH_SECONDS", "6")),
            rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
            before=Path(os.environ["BENCH_BEFORE"]) if os.environ.get("BENCH_BEFORE") else None,
        )
    )
    time.sleep(0)
