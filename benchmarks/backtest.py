"""Backtest runtime: two weeks of one service (a sample a minute, four version changes, one bad),
imported with promtool into a real Prometheus; `sluice backtest` under one policy and two (--compare).

Standalone: `python -m benchmarks.backtest` writes or replaces its section of benchmarks/RESULTS.md;
`make bench` runs it as section 5.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.analysis.backtest import backtest
from app.cli.demo.stack import start_redis
from app.config_file.loader import parse_config
from app.context import Context
from tests.support.history import lean_openmetrics, two_weeks
from tests.support.prom_data import serve_history

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "## 5. Backtest"
END = 1_700_006_400
CONFIG = """
prometheus: {{url: "{prom}", timeout: 10s, namespace_label: namespace}}
applications:
  - name: store
    namespace: prod
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
      - {{name: shop, stable_version: 1.0.0, policy: canary}}
policies:
  - name: canary
    interval: 10s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
  - name: lenient
    interval: 10s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
    judge: {{errors: {{margin: 0.05}}}}
"""


def run(workdir: Path, runs: int = 3) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    traffic, eras = two_weeks(END)
    text = lean_openmetrics(traffic, END - 14 * 86400, END)
    started = time.monotonic()
    (workdir / "prom").mkdir()
    prom, url = serve_history(workdir / "prom", text, import_timeout=600)
    imported = time.monotonic() - started
    redis_proc, redis_url = start_redis(workdir)
    try:
        ctx = Context(config=parse_config(CONFIG.format(prom=url)), redis_url=redis_url)
        one, two = [], []
        evaluations = 0
        for _ in range(runs):
            result = backtest(ctx, "shop", 14 * 86400, ["canary"], until=END)
            one.append(result.seconds)
            evaluations = sum(v.evaluations for v in result.verdicts["canary"])
            two.append(backtest(ctx, "shop", 14 * 86400, ["canary", "lenient"], until=END).seconds)
        changes = len([c for c in result.changes if c.source])
    finally:
        redis_proc.stop()
        prom.stop()
    lines = [
        "| data | version changes found | evaluations replayed | one policy: median s [min..max]"
        " | --compare (two): median s [min..max] |",
        "|---|---|---|---|---|",
        f"| 14 days, 1 service, a sample a minute ({text.count(chr(10)):,} samples) | {changes} (of {len(eras) - 1}) "
        f"| {evaluations} | {_stats(one)} | {_stats(two)} |",
        "",
        f"{runs} runs each against Prometheus 2.42 serving promtool-imported blocks (import: {imported:.0f} s, not "
        "counted). Policy interval 10 s, three 2-minute steps: each change is replayed from its first traffic "
        "until the policy decides. Target: under a minute.",
    ]
    return "\n".join(lines)


def _stats(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} [{min(xs):.1f}..{max(xs):.1f}]"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-backtest-") as tmp:
        section = f"{TITLE}\n\n{run(Path(tmp))}\n"
    print(section)
    current = RESULTS.read_text() if RESULTS.exists() else "# Sluice benchmarks\n"
    if TITLE in current:
        before, _, rest = current.partition(TITLE)
        after = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        current = before + section + after.lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
