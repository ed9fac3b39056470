"""`python -m scenarios` (`make scenarios`): run the release scenarios under each policy; write docs/scenarios.md.

python -m scenarios                                  # every scenario, the three policies in scenarios/policies
python -m scenarios --config scenarios/policies/readme.yaml --only good-steady,bad-4xx-all
python -m scenarios --fast --out /tmp/fast.md        # the subset `make test` runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scenarios.catalog import FAST, SCENARIOS, Scenario, by_name
from scenarios.harness import PolicyRun, Result, load_policy
from scenarios.load import Pattern
from scenarios.report import markdown

HERE = Path(__file__).parent
DEFAULT_POLICIES = [HERE / "policies" / n for n in ("example-canary.yaml", "readme.yaml", "no-checks.yaml")]
# The requests a second one run of the harness sends (one asyncio load generator, one HAProxy, every
# scenario's two versions, on the same 2 cores). At ~1,240 req/s (all 34 scenarios at once) the load
# generator fell behind within 20 s, its connections piled up past HAProxy's maxconn and every
# release saw no traffic; the 24 scenarios of ~880 req/s ran right. A policy's scenarios run in
# batches under this rate, one stack after the other.
MAX_RATE = 700.0


def batches(scenarios: list[Scenario], max_rate: float = MAX_RATE) -> list[list[Scenario]]:
    """The scenarios in catalog order, cut where the next would take a batch's mean rate over `max_rate`."""
    out: list[list[Scenario]] = [[]]
    total = 0.0
    for s in scenarios:
        rate = mean_rate(s.pattern)
        if out[-1] and total + rate > max_rate:
            out.append([])
            total = 0.0
        out[-1].append(s)
        total += rate
    return out


def mean_rate(p: Pattern) -> float:
    return p.rate + ((p.burst_rate - p.rate) * p.burst_s / p.burst_every_s if p.burst_every_s else 0.0)


def worst(stats: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The batches' worker figures together: ticks summed, lag and duration at their worst batch's."""
    out: dict[str, float | None] = {}
    for one in stats:
        for key, value in one.items():
            if value is None:
                out.setdefault(key, None)
            elif key == "ticks":
                out[key] = (out.get(key) or 0.0) + value
            else:
                out[key] = max(value, out.get(key) or 0.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", type=Path, help="a policy file (repeatable; default: all three)")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--fast", action="store_true", help="only the fast subset")
    parser.add_argument("--out", type=Path, default=Path("docs/scenarios.md"), help="the Markdown report")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, configs, load)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    scenarios = by_name(args.only.split(",")) if args.only else (FAST if args.fast else SCENARIOS)
    if args.list:
        for s in scenarios:
            print(f"{s.name:28} {s.expected:12} {s.traffic:9} {s.description}")
        return 0
    policies = [load_policy(p) for p in (args.config or DEFAULT_POLICIES)]
    workdir = Path(tempfile.mkdtemp(prefix="sluice-scenarios-"))
    started = time.monotonic()
    results: dict[str, list[Result]] = {}
    workers: dict[str, dict[str, float | None]] = {}
    try:
        for policy in policies:
            parts = batches(scenarios)
            head = f"== policy {policy.name} ({policy.path}): {len(scenarios)} scenarios"
            print(f"{head} in {len(parts)} batch(es)", flush=True)
            results[policy.name], stats = [], []
            for i, part in enumerate(parts):
                folder = workdir / policy.name / f"batch-{i + 1}"
                run = PolicyRun(policy, part, folder, say=lambda m: print(m, flush=True))
                results[policy.name] += run.run()
                stats.append(run.worker)
            workers[policy.name] = worst(stats)
            rs = results[policy.name]
            print(f"== {policy.name}: {sum(r.right for r in rs)} / {len(rs)} right", flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    runtime = time.monotonic() - started
    command = "python -m scenarios " + " ".join(sys.argv[1:] if argv is None else argv)
    paths = {p.name: str(p.path.relative_to(Path.cwd()) if p.path.is_absolute() else p.path) for p in policies}
    meta = {"paths": paths, "workers": workers}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, command.strip(), runtime, meta))
    if args.json:
        args.json.write_text(json.dumps({k: [r.as_dict() for r in v] for k, v in results.items()}, indent=1))
    for name, rs in results.items():
        wrong = [f"{r.scenario.name} ({r.outcome}{', late' if r.verdict == 'late' else ''})" for r in rs if not r.right]
        tail = f"; wrong: {', '.join(wrong)}" if wrong else ""
        print(f"{name}: {sum(r.right for r in rs)} / {len(rs)} right{tail}")
    print(f"wrote {args.out} in {runtime:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
