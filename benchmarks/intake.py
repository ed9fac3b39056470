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
    requests: int = 0
    cpu_ms: float = 0.0  # CPU per request of the server (its gunicorn master and workers) and of Redis
    redis_ms: float = 0.0  # of which Redis's


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their children (a gunicorn master's workers), from /proc.
    Less disturbed by the other load on a shared machine than requests/s: it is what each request costs."""
    total, tick, todo = 0.0, os.sysconf("SC_CLK_TCK"), list(pids)
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a process that ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


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
    rps = len(rows) / max(span, 1e-9)
    return Load(rps, percentile(latencies, 50), percentile(latencies, 99), errors, len(rows))


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


def serve(
    workdir: Path, name: str, app: str, env: dict[str, str], tree: Path = REPO, config: Path | None = None
) -> tuple[Process, int]:
    """`app` under gunicorn with Sluice's serving configuration (gevent), on a free loopback port;
    `tree`: the checkout it is served from (another one for a before/after run); `config`: another
    gunicorn configuration (benchmarks/profiled_serving.py) instead of the tree's app/web/serving.py."""
    port = free_port()
    serving = config or tree / "app" / "web" / "serving.py"
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
    "CPU ms / request, workers + Redis: Sluice / bare (bare / Sluice); Sluice's Redis",
    "saturated p50 / p99 ms",
    "at half the saturating rate: p50 / p99 ms",
    "non-2xx",
]


def _ratio(ours: list[Load], base: list[Load]) -> str:
    ratios = [o.rps / b.rps for o, b in zip(ours, base, strict=True)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]"


def _cpu(loads: list[Load]) -> float:
    return statistics.median(load.cpu_ms for load in loads)


def measure(
    servers: dict[str, tuple[int, list[int]]],
    path: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    rounds: int,
) -> dict[str, list[Load]]:
    """Each server (name -> its port, and the pids whose CPU it costs: its own, then Redis's) loaded in
    turn, round after round, so that all see the same noise. Each is warmed up first (its connections
    to Redis are opened at its first requests), and each round starts with the next server: the first
    of a round was measured ~10% dearer than the same code served later in it."""
    loads: dict[str, list[Load]] = {name: [] for name in servers}
    for port, _pids in servers.values():
        hey(f"http://127.0.0.1:{port}{path}", body, headers, 1, 16)
    order = list(servers.items())
    for i in range(rounds):
        for name, (port, pids) in order[i % len(order) :] + order[: i % len(order)]:
            before, redis_before = cpu_seconds(pids), cpu_seconds(pids[-1:])
            load = hey(f"http://127.0.0.1:{port}{path}", body, headers, seconds, 16)
            load.cpu_ms = (cpu_seconds(pids) - before) * 1000 / max(load.requests, 1)
            load.redis_ms = (cpu_seconds(pids[-1:]) - redis_before) * 1000 / max(load.requests, 1)
            loads[name].append(load)
    return loads


def _row(name: str, loads: dict[str, list[Load]], half: Load) -> list[str]:
    ours, base = loads["sluice"], loads["bare"]
    row = [
        name,
        f"{statistics.median(o.rps for o in ours):.0f}",
        f"{statistics.median(b.rps for b in base):.0f}",
        _ratio(ours, base),
        f"{_cpu(ours):.2f} / {_cpu(base):.2f} ({_cpu(base) / _cpu(ours):.2f}); "
        f"{statistics.median(o.redis_ms for o in ours):.2f}",
        f"{statistics.median(o.p50_ms for o in ours):.1f} / {statistics.median(o.p99_ms for o in ours):.1f}",
        f"{half.rps:.0f} req/s: {half.p50_ms:.1f} / {half.p99_ms:.1f}",
        str(sum(o.errors for o in ours) + half.errors),
    ]
    row.insert(5, f"{_ratio(loads['floor'], base)}; CPU {_cpu(loads['floor']):.2f} ms")
    if "before" in loads:
        then = loads["before"]
        row.insert(6, f"{_ratio(then, base)}; CPU {_cpu(then):.2f} ms ({_cpu(base) / _cpu(then):.2f})")
    return row


def environment(workdir: Path, redis_url: str) -> dict[str, str]:
    """The web's environment for the benchmark (its configuration written into `workdir`)."""
    config = workdir / "sluice.yaml"
    config.write_text(bench_config())
    return {
        "SLUICE_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "SLUICE_API_TOKEN": TOKEN,
        "SLUICE_DEPLOY_SECRET": DEPLOY_SECRET,
        "CIRCLECI_WEBHOOK_SECRET": CIRCLECI_SECRET,
        "SLUICE_LOG_LEVEL": "WARNING",
        "SLUICE_INTAKE_RATE": "1000000 per minute",  # throughput from one address, not the rate limit
        "SLUICE_ALLOW_UNTIMED_SIGNATURE": "1",  # see the module's docstring
    }


def run(workdir: Path, seconds: float = 6.0, rounds: int = 3, before: Path | None = None) -> str:
    """`before`: another checkout of Sluice (e.g. `git worktree add --detach /tmp/before main`), served
    beside this one in the same rounds: its ratio to bare Flask gets a column."""
    procs: list[Process] = []
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        redis_proc, redis_url = start_redis(workdir)
        procs.append(redis_proc)
        env = environment(workdir, redis_url)
        servers: dict[str, tuple[int, list[int]]] = {}
        for name, app, tree in [
            ("sluice", "app:create_app()", REPO),
            ("bare", "benchmarks.bare_app:create_app()", REPO),
            ("floor", "benchmarks.bare_app:create_floor_app()", REPO),  # bare + one EVALSHA: the honest ceiling
            *([("before", "app:create_app()", before)] if before else []),
        ]:
            proc, port = serve(workdir, f"bench-{name}", app, env, tree)
            procs.append(proc)
            assert proc.proc is not None and redis_proc.proc is not None
            servers[name] = (port, [proc.proc.pid, redis_proc.proc.pid])
        rows = []
        for name, (path, body, headers) in endpoints().items():
            first = requests.post(
                f"http://127.0.0.1:{servers['sluice'][0]}{path}",
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=10,
            )
            if first.status_code == 404:
                rows.append([name, "endpoint not available", *[""] * (len(HEADER) - 2)])
                continue
            first.raise_for_status()
            loads = measure(servers, path, body, headers, seconds, rounds)
            sat = statistics.median(o.rps for o in loads["sluice"])
            url = f"http://127.0.0.1:{servers['sluice'][0]}{path}"
            rows.append(_row(name, loads, hey(url, body, headers, seconds, 8, qps_per_worker=sat / 2 / 8)))
        extra = ["bare + one EVALSHA (the floor): ratio; CPU / request"]
        extra += ["before: ratio; CPU / request"] if before else []
        header = [*HEADER[:5], *extra, *HEADER[5:]]
        return (
            table(header, rows)
            + f"\n\ngunicorn -c app/web/serving.py (gevent, {GUNICORN_WORKERS} workers, access log) for both; "
            f"hey -c 16, {rounds} alternating rounds of {seconds:.0f} s each; then hey -c 8 rate-limited to half the "
            "median saturating rate. CPU per request: the server's processes' and Redis's user + system CPU "
            "(/proc) over a round, divided by the requests answered in it (median of the rounds)."
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
