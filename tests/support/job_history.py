"""Recent history for replay and backtest jobs (tests/web/test_jobs_*.py), in one real Prometheus.

Recent because a backtest over the API looks back from now (at most 30 days). Two promtool imports
into one TSDB: `shop`'s three versions at 5 s samples around T0 (26 hours ago) for replays of
releases run live through the tick path (tests/app/test_replay.run_live), and a day of `cart` at
one sample a minute with three version changes, one bad (20 % errors, replaced after 40 minutes).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.cli.demo.stack import Process, require_binary, start_prometheus
from app.config_file.loader import parse_config
from app.context import Context, set_context
from tests.support.fakes import FakeRouter
from tests.support.history import BAD_CODES, GOOD_CODES, LATENCIES, lean_openmetrics
from tests.support.prom_data import Traffic, openmetrics

HOUR = 3600
NOW = int(time.time()) // 60 * 60
END = NOW - 5 * 60  # the last sample of `cart`
T0 = END - 26 * HOUR  # the replayed releases start here
REPLAY_START, REPLAY_END, REPLAY_STEP = T0 - 20 * 60, T0 + 30 * 60, 5

STABLE = Traffic("shop", "1.0.0", codes={"200": 99, "500": 1}, latencies=[(0.05, 95), (0.3, 5)])
GOOD = Traffic("shop", "1.0.1", codes={"200": 20}, latencies=[(0.05, 16), (0.3, 4)], born_at=T0 - 30)
BAD = Traffic("shop", "1.0.2", codes={"200": 17, "500": 3}, latencies=[(0.05, 19), (0.3, 1)], born_at=T0 - 30)


@dataclass(frozen=True)
class Era:
    version: str
    start: int
    end: int
    bad: bool = False


def cart_day() -> tuple[list[Traffic], list[Era]]:
    """1.0.0 → 1.1.0 (20 h ago) → 1.2.0 (10 h ago, bad) → 1.2.1 (40 minutes later)."""
    start = END - 24 * HOUR
    switches = [
        ("1.0.0", start, False),
        ("1.1.0", END - 20 * HOUR, False),
        ("1.2.0", END - 10 * HOUR, True),
        ("1.2.1", END - 10 * HOUR + 40 * 60, False),
    ]
    eras = [
        Era(v, s, (switches[i + 1][1] - 60) if i + 1 < len(switches) else END, bad)
        for i, (v, s, bad) in enumerate(switches)
    ]
    traffic = [
        Traffic(
            "cart",
            e.version,
            codes=BAD_CODES if e.bad else GOOD_CODES,
            latencies=LATENCIES,
            born_at=None if e.start == start else e.start,
            ends_at=e.end,
        )
        for e in eras
    ]
    return traffic, eras


CONFIG = """
prometheus: {{url: "{prom}", timeout: 5s}}
jobs: {{result_ttl: 2h, dedup_window: 30s}}
applications:
  - name: store
    namespace: prod
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
      - {{name: shop, stable_version: 1.0.0, policy: canary}}
      - {{name: cart, stable_version: 1.0.0, policy: steady}}
policies:
  - name: canary
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 50, duration: 1m}}, {{weight: 100, duration: 1m}}]
    judge: {{warmup: 10s, slow: {{margin: 0.2}}}}
    checks:
      - {{name: fast, type: latency, under: 250ms, min: 0.7}}
  - name: lenient
    interval: 10s
    steps: [{{weight: 10, duration: 1m}}, {{weight: 50, duration: 1m}}, {{weight: 100, duration: 1m}}]
    judge: {{errors: {{enabled: false}}}}
  - name: steady
    interval: 30s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
  - name: steady-lenient
    interval: 30s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
    judge: {{errors: {{enabled: false}}}}
"""


def serve_job_history(workdir: Path) -> tuple[Process, str]:
    """A real Prometheus with both histories (two promtool imports into one TSDB)."""
    require_binary("promtool", "prometheus")
    storage = workdir / "tsdb"
    cart, _ = cart_day()
    texts = {
        "shop.om": openmetrics([STABLE, GOOD, BAD], REPLAY_START, REPLAY_END, REPLAY_STEP),
        "cart.om": lean_openmetrics(cart, END - 24 * HOUR, END, 60),
    }
    for name, text in texts.items():
        path = workdir / name
        path.write_text(text)
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(storage)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return start_prometheus(workdir, storage=storage, extra_flags=["--storage.tsdb.retention.time=100y"])


@contextmanager
def job_context(redis_url: str, prometheus_url: str) -> Iterator[Context]:
    """Sluice's context over the job history (CONFIG against this Prometheus, a fake router for
    the `store` application), installed as the process's context while the test runs."""
    context = Context(config=parse_config(CONFIG.format(prom=prometheus_url)), redis_url=redis_url)
    context._routers["store"] = FakeRouter({"shop": {"1.0.0": 100}})  # type: ignore[assignment]
    set_context(context)
    try:
        yield context
    finally:
        set_context(None)
        context.prometheus.close()
        context.store.r.close()


@contextmanager
def job_prometheus(workdir: Path) -> Iterator[str]:
    """Prometheus serving the job history; its URL."""
    proc, url = serve_job_history(workdir)
    try:
        yield url
    finally:
        proc.stop()
