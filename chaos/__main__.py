"""`python -m chaos` (`make chaos`): real releases through the real stack while faults are injected;
writes docs/reliability.md.

python -m chaos                                    # every fault, the fuzz run, 1,000 releases on 4 workers
python -m chaos --only several-workers-under-kills --swarm-releases 60
python -m chaos --only haproxy-reload,redis-restart --no-fuzz --out /tmp/r.md
python -m chaos --list
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine
from chaos.faults import FAULTS, by_name
from chaos.fuzz import EXAMPLES
from chaos.report import markdown
from chaos.suite import run
from chaos.swarm import Plan
from chaos.swarm import run as swarm_run
from chaos.swarm_checks import SwarmResult


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated fault names")
    parser.add_argument("--no-fuzz", action="store_true", help="skip the fuzz run")
    parser.add_argument("--fuzz-examples", type=int, default=EXAMPLES)
    parser.add_argument("--out", type=Path, default=Path("docs/reliability.md"), help="the Markdown report")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, configs, load)")
    parser.add_argument(
        "--swarm-releases",
        type=int,
        help="releases for the several-workers proof (chaos/swarm.py): 1000 by default, 0 with --only",
    )
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args(argv)

    faults = by_name(args.only.split(",")) if args.only else FAULTS
    if args.list:
        for f in faults:
            print(f"{f.name:24} {f.fault} — expected: {f.expected}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="sluice-chaos-"))
    started = time.monotonic()
    try:
        results, fuzzed = run(
            faults, workdir, say=lambda m: print(m, flush=True), fuzz_examples=0 if args.no_fuzz else args.fuzz_examples
        )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    swarm = run_swarm(args.swarm_releases if args.swarm_releases is not None else (0 if args.only else 1000))
    runtime = time.monotonic() - started
    command = "python -m chaos " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, fuzzed, command.strip(), runtime, machine(), swarm))
    for r in results:
        problems = [p for c in r.releases for p in c.problems] + [w for w, ok in r.checks if not ok]
        print(f"{r.fault.name}: {'pass' if r.passed else 'FAIL'}" + (f" ({'; '.join(problems)})" if problems else ""))
    if fuzzed:
        print(f"fuzz: {'pass' if fuzzed[0] else 'FAIL'}: {fuzzed[1]}")
    print(f"wrote {args.out} in {runtime:.0f}s")
    if swarm:
        print(f"several workers: {swarm[0].summary()}")
    passed = all(r.passed for r in results) and (fuzzed is None or fuzzed[0]) and (swarm is None or swarm[0].passed)
    return 0 if passed else 1


def run_swarm(releases: int) -> tuple[SwarmResult, str] | None:
    """The several-workers proof (chaos/swarm.py) with `releases` releases on 4 workers; None for 0."""
    if releases <= 0:
        return None
    # Every 5 s rather than 2 s: 1,000 releases at 2 s would need more ticks per second than two cores give.
    plan = Plan(releases=releases, workers=4, interval=5.0, spread=max(10.0, releases / 20), timeout=1200.0)
    with tempfile.TemporaryDirectory(prefix="sluice-swarm-") as tmp:
        result = swarm_run(plan, Path(tmp), say=lambda m: print(m, flush=True))
    return result, f"python -m chaos.swarm --releases {releases} --workers 4 --interval 5 --spread {plan.spread:g}"


if __name__ == "__main__":
    sys.exit(main())
