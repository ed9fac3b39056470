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

from scenarios.catalog import FAST, SCENARIOS, by_name
from scenarios.harness import PolicyRun, Result, load_policy
from scenarios.report import markdown

HERE = Path(__file__).parent
DEFAULT_POLICIES = [HERE / "policies" / n for n in ("example-canary.yaml", "readme.yaml", "no-checks.yaml")]


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
            print(f"== policy {policy.name} ({policy.path}): {len(scenarios)} scenarios", flush=True)
            run = PolicyRun(policy, scenarios, workdir / policy.name, say=lambda m: print(m, flush=True))
            results[policy.name] = run.run()
            workers[policy.name] = run.worker
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
