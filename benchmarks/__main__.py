"""`make bench`: run every benchmark and write benchmarks/RESULTS.md.

python -m benchmarks [--quick] [--only intake,reaction,scale]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks import backtest, footprint, intake, judge, reaction, scale, watcher_footprint
from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="shorter runs (for trying the suite out)")
    parser.add_argument("--only", default="intake,reaction,scale,backtest,judge", help="comma-separated sections")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--sizes", help="comma-separated numbers of releases for the scale runs")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the scale runs")
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of the scale runs before the measured window (long enough for every release's first "
        "tick to measure a steady state: ~N / ticks-per-second)",
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    everything = args.only == parser.get_default("only")
    plain = not args.quick and everything and not args.sizes and args.workers == "1,2" and args.warmup == 10.0
    command = "make bench" if plain else "python -m benchmarks " + " ".join(sys.argv[1:])
    parts = [
        "# Sluice benchmarks",
        "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}`",
        "- these machines are shared and noisy: compare the ratios and ranges measured side by side in one run,"
        " not absolute numbers across runs.",
        "",
    ]
    try:
        if "intake" in sections:
            print("intake ...", flush=True)
            parts += [
                "## 1. Intake",
                "",
                intake.run(workdir / "intake", seconds=3 if args.quick else 6, rounds=1 if args.quick else 3),
                "",
            ]
        if "reaction" in sections:
            print("reaction ...", flush=True)
            text, _ = reaction.run(workdir / "reaction", runs=3 if args.quick else 10)
            parts += ["## 2. Reaction to a bad version", "", text, ""]
        if "scale" in sections:
            print("scale ...", flush=True)
            sizes: tuple[int, ...] = (100, 1000) if args.quick else (100, 1000, 2000, 5000)
            if args.sizes:
                sizes = tuple(int(n) for n in args.sizes.split(","))
            workers = tuple(int(n) for n in args.workers.split(","))
            text, results = scale.run(
                workdir / "scale",
                sizes=sizes,
                worker_counts=workers,
                seconds=15 if args.quick else 30,
                warmup=args.warmup,
            )
            watcher = {n: watcher_footprint.measure(workdir / f"watcher-{n}", n) for n in (0, 1000)}
            store = footprint.redis_per_release(workdir / "redis-per-release")
            parts += ["## 3. Scale", "", text, "", "## 4. Footprint", "", footprint.report(results, watcher), ""]
            parts += [footprint.redis_table(store), ""]
        if "backtest" in sections:
            print("backtest ...", flush=True)
            parts += [backtest.TITLE, "", backtest.run(workdir / "backtest", runs=1 if args.quick else 3), ""]
        if "judge" in sections:
            print("judge ...", flush=True)
            parts += [judge.TITLE, "", judge.run(repeat=50 if args.quick else 200), ""]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.write_text("\n".join(parts) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
