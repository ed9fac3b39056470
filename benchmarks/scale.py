"""Scale: N concurrent releases at a 10 s interval, 1 or 2 workers; tick lag, cost per tick, footprint.

Prometheus is a static nginx stub (every query answers one sample; the judge's counts query a
realistic set of status and bucket counts) and the router is in-memory, so the numbers are
Sluice's own cost.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import redis
import requests

from app.cli.demo.stack import Process, free_port, require_binary, start_gunicorn, start_redis, wait_until
from app.config_file.loader import parse_config
from app.context import Context
from app.release.intake import start_release
from app.store import keys
from benchmarks.common import cpu_seconds, percentile, rss_mib, table
from benchmarks.grouped_stub import COUNTS_ROWS

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 10.0
PROM_ANSWER = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"0.5"]}]}}'
COUNTS_ANSWER = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [0, str(value)]} for labels, value in COUNTS_ROWS],
        },
    },
    separators=(",", ":"),
)


def start_prometheus_stub(workdir: Path) -> tuple[list[Process], str]:
    """nginx answers every single query with one static sample; grouped queries (`=~`, one per
    check for a batch of releases) go to benchmarks/grouped_stub.py, which labels each pair."""
    binary = require_binary("nginx", "nginx-light")
    port, grouped_port = free_port(), free_port()
    grouped = Process(
        "grouped-stub",
        [sys.executable, "-m", "benchmarks.grouped_stub", str(grouped_port)],
        workdir,
        env={"PYTHONPATH": str(REPO)},
    ).start()
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {workdir}/nginx-body;
  client_body_buffer_size 1m; client_max_body_size 1m;  # packed queries (POST) stay in memory
  upstream grouped {{ server 127.0.0.1:{grouped_port}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location = /api/v1/query {{
      if ($request_method = POST) {{ rewrite ^ /grouped last; }}
      if ($args ~ "present_over_time") {{ return 200 '{COUNTS_ANSWER}'; }}
      if ($args ~ "%3D~") {{ rewrite ^ /grouped last; }}
      default_type application/json; return 200 '{PROM_ANSWER}';
    }}
    location = /grouped {{
      internal; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://grouped/api/v1/query$is_args$args;
    }}
  }}
}}
""")
    proc = Process(
        "prometheus-stub", [binary, "-c", str(conf), "-e", str(workdir / "nginx-error.log")], workdir
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/api/v1/query", timeout=1).ok, 10, "nginx", proc.proc, proc.log)
    wait_until(
        lambda: (
            len(
                requests.get(url + "/api/v1/query", params={"query": 'x{app=~"a",version=~"1"}'}, timeout=1).json()[
                    "data"
                ]["result"]
            )
            == 1
        ),
        10,
        "grouped stub",
        grouped.proc,
        grouped.log,
    )
    return [grouped, proc], url


def config_for(n: int, prometheus_url: str) -> str:
    services = "\n".join(f'      - {{name: svc-{i:05d}, stable_version: "1.0.0", policy: p}}' for i in range(n))
    return f"""
prometheus: {{url: "{prometheus_url}", timeout: 2s}}
applications:
  - name: bench
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
{services}
policies:
  - name: p
    interval: {INTERVAL:g}s
    steps: [{{weight: 10, duration: 1h}}, {{weight: 100}}]
    checks:
      - {{name: fast, type: latency, under: 500ms, min: 0.1}}
      - {{name: traffic, type: request_rate, min: 0}}
      - {{name: errors, type: error_rate, max_over_stable: 1}}
"""


def redis_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def commands_processed(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def _started(client: redis.Redis, ids: list[str]) -> int:
    """How many of the benchmark's releases are past their first tick (state `running`)."""
    started = 0
    for i in range(0, len(ids), 1000):
        raws = client.mget([keys.release(r) for r in ids[i : i + 1000]])
        started += sum(1 for raw in raws if raw and b'"state":"running"' in raw)
    return started


def run_one(workdir: Path, n: int, workers: int, seconds: float, warmup: float) -> dict:
    procs: list[Process] = []
    try:
        redis_proc, redis_url = start_redis(workdir)
        prom_procs, prom_url = start_prometheus_stub(workdir)
        procs += [redis_proc, *prom_procs]
        config_path = workdir / f"sluice-{n}.yaml"
        config_path.write_text(config_for(n, prom_url))
        ctx = Context(config=parse_config(config_path.read_text()), redis_url=redis_url, prometheus_url=prom_url)
        mem0 = redis_memory(ctx.store.r)
        # Releases arrive spread over one interval, as independent deploys do.
        t0 = time.time() + 3
        ids = []
        for i in range(n):
            rel = start_release(ctx, f"svc-{i:05d}", "1.0.1").release
            ctx.store.schedule_tick(rel.id, rel.seq, t0 + i * INTERVAL / n)
            ids.append(rel.id)
        mem_created = redis_memory(ctx.store.r)
        env = {
            "SLUICE_CONFIG": str(config_path),
            "REDIS_URL": redis_url,
            "PROMETHEUS_URL": prom_url,
            "SLUICE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
            "SLUICE_API_TOKEN": "bench",
        }
        worker_procs = [
            Process(f"worker-{n}-{w}", [sys.executable, "-m", "benchmarks.scale_worker"], workdir, env=env).start()
            for w in range(workers)
        ]
        procs += worker_procs
        web, web_port = start_gunicorn(workdir, f"web-{n}", "app:create_app()", env=env, workers=2, threads=4)
        procs.append(web)
        idle_web_rss = rss_mib([web.proc.pid]) if web.proc else 0.0
        idle_worker_rss = rss_mib([p.proc.pid for p in worker_procs if p.proc])
        time.sleep(max(0.0, t0 + warmup - time.time()))
        client = ctx.store.r
        cmd0 = commands_processed(client)
        cpu0 = sum(cpu_seconds(p.proc.pid) for p in worker_procs if p.proc)
        # Ticks before the window, and how many releases had had their first (`start`) tick: the
        # window measures a steady state only once every release has (at 10,000 releases that is
        # minutes; --warmup).
        warm_ticks = client.llen("bench:ticks")
        started = _started(client, ids)
        client.delete("bench:ticks")
        time.sleep(seconds)
        cmd1 = commands_processed(client)
        cpu1 = sum(cpu_seconds(p.proc.pid) for p in worker_procs if p.proc)
        time.sleep(1.5)  # let the workers flush their samples
        mem_ticked = redis_memory(client) - 64 * client.llen("bench:ticks")  # less the benchmark's samples
        samples = [json.loads(x) for x in client.lrange("bench:ticks", 0, -1)]
        window = [s for s in samples if s[0] <= t0 + warmup + seconds]
        for _ in range(5):  # the web process under the same store: list and detail pages
            requests.get(
                f"http://127.0.0.1:{web_port}/api/v1/releases?limit=50",
                headers={"Authorization": "Bearer bench"},
                timeout=30,
            ).raise_for_status()
        web_rss = rss_mib([web.proc.pid]) if web.proc else 0.0
        ticks = len(window)
        lags = [s[1] for s in window if s[1] is not None]
        return {
            "n": n,
            "workers": workers,
            "ticks": ticks,
            "warmup_ticks": warm_ticks,
            "started_share": started / n,
            "ticks_per_s": ticks / seconds,
            "needed_per_s": n / INTERVAL,
            "lag_p50": percentile(lags, 50) if lags else float("nan"),
            "lag_p99": percentile(lags, 99) if lags else float("nan"),
            "tick_ms": statistics.median(s[2] for s in window) * 1000 if window else float("nan"),
            "tick_cpu_ms": statistics.median(s[3] for s in window) * 1000 if window else float("nan"),
            "worker_cpu_per_tick_ms": (cpu1 - cpu0) / ticks * 1000 if ticks else float("nan"),
            # minus the benchmark's batched RPUSH of its samples
            "redis_cmds_per_tick": (cmd1 - cmd0) / ticks - 1 / 200 if ticks else float("nan"),
            # Redis memory per release (record, indexes, events, evaluations, schedule), when created
            # and after warm-up + measured seconds of ticks (each adds its evaluations and events).
            "redis_bytes_per_release": (mem_created - mem0) / n,
            "redis_bytes_per_release_ticked": (mem_ticked - mem0) / n,
            "worker_rss": rss_mib([p.proc.pid for p in worker_procs if p.proc]) / workers,
            "idle_worker_rss": idle_worker_rss / workers,
            "web_rss": web_rss,
            "idle_web_rss": idle_web_rss,
        }
    finally:
        for p in reversed(procs):
            p.stop()


def run(
    workdir: Path,
    sizes: tuple[int, ...] = (100, 1000, 5000),
    worker_counts: tuple[int, ...] = (1, 2),
    seconds: float = 30.0,
    warmup: float = 10.0,
) -> tuple[str, list[dict]]:
    results = []
    for n in sizes:
        for w in worker_counts:
            sub = workdir / f"scale-{n}-{w}"
            sub.mkdir(parents=True, exist_ok=True)
            results.append(run_one(sub, n, w, seconds, warmup))
    rows = [
        [
            r["n"],
            r["workers"],
            f"{r['needed_per_s']:.0f}",
            f"{r['ticks_per_s']:.0f}",
            f"{r['started_share']:.0%}",
            f"{r['lag_p50'] * 1000:.0f}",
            f"{r['lag_p99'] * 1000:.0f}",
            f"{r['tick_ms']:.1f}",
            f"{r['tick_cpu_ms']:.1f}",
            f"{r['worker_cpu_per_tick_ms']:.1f}",
            f"{r['redis_cmds_per_tick']:.1f}",
            f"{r['worker_rss']:.0f}",
            f"{r['redis_bytes_per_release'] / 1024:.1f} / {r['redis_bytes_per_release_ticked'] / 1024:.1f}",
        ]
        for r in results
    ]
    text = table(
        [
            "releases",
            "workers",
            "ticks/s needed",
            "ticks/s done",
            "started when measured",
            "lag p50 ms",
            "lag p99 ms",
            "tick wall ms (median)",
            "tick CPU ms",
            "worker CPU ms / tick (incl. RQ)",
            "Redis commands / tick",
            "RSS per worker MiB",
            "Redis KiB / release (created / after ticks)",
        ],
        rows,
    )
    held = [r["n"] for r in results if r["workers"] == 1 and r["lag_p99"] < 1.0]
    text += (
        f"\n\nInterval {INTERVAL:g} s; {seconds:.0f} s measured after a {warmup:.0f} s warm-up; releases "
        f'spread over one interval ("started when measured": the share past their first tick when the '
        "window began; below 100% the window measures first ticks, not a steady state: --warmup). "
        f"Largest N measured that one worker holds with p99 lag < 1 s: "
        f"{max(held) if held else 'none of those measured'}. A batch of ticks asks each check once for "
        "all its releases and all their judge's counts in one request (the stub answers both); the router "
        "is in-memory and keeps its weights. Where a tick's time goes: `python -m benchmarks.profile_tick`."
    )
    return text, results
