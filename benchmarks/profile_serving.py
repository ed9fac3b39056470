"""Where a webhook's CPU goes inside a gevent gunicorn worker under load (issue #21 item 6).

    python -m benchmarks.profile_serving [--endpoint deploy|circleci] [--app sluice|bare] [--seconds 10]
        [--top 30] [--tree CHECKOUT] [--save DIR] [--no-profile]

benchmarks/profile_intake.py profiles Sluice in-process through Flask's test client, which skips
gunicorn, gevent and the sockets. This serves the app as benchmarks/intake.py does (gunicorn with
app/web/serving.py's settings: gevent workers, access log), with yappi in each worker
(benchmarks/profiled_serving.py), loads it with `hey -c 16` for `--seconds`, stops it (the workers
write their statistics as they exit) and prints: the requests answered, the workers' CPU per request
from /proc (the profiler's own overhead included: compare with --no-profile), the profile's CPU per
request by package (where the file of each function lives) and its top functions by own and by
cumulative time, in ms per request.
"""

from __future__ import annotations

import argparse
import collections
import io
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

import requests

from app.cli.demo.stack import start_redis
from benchmarks import intake

PROFILED = Path(__file__).resolve().parent / "profiled_serving.py"
APPS = {"sluice": "app:create_app()", "bare": "benchmarks.bare_app:create_app()"}


def package(where: str) -> str:
    """Where a function lives, coarsely: a site-packages package, a part of this project, or the stdlib module."""
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    for top in ("app", "integrations", "workers", "benchmarks"):
        if top in parts:
            i = parts.index(top)
            return "/".join(parts[i : i + 2]).removesuffix(".py")
    if "lib/python" in file:
        return "stdlib:" + Path(file).stem
    return file


def read_stacks(files: list[Path]) -> collections.Counter[tuple[str, ...]]:
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for file in files:
        for line in file.read_text().splitlines():
            if line:
                count, _, stack = line.partition("\t")
                stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def shares(stacks: collections.Counter[tuple[str, ...]], ms_per_request: float, top: int) -> str:
    """The samples as ms per request: own time by package and by function, and inclusive time by function."""
    total = sum(stacks.values())
    own_pkg: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        own[stack[-1]] += count
        own_pkg[package(stack[-1])] += count
        for where in set(stack):
            inclusive[where] += count

    def table(title: str, counter: collections.Counter[str], n: int) -> str:
        rows = [f"{title} ({total} samples; ms per request, share)"]
        for name, count in counter.most_common(n):
            rows.append(f"  {count / total * ms_per_request:7.3f}  {100 * count / total:5.1f}%  {name}")
        return "\n".join(rows)

    return "\n\n".join(
        [
            table("own time by package", own_pkg, 25),
            table("own time by function", own, top),
            table("inclusive time by function", inclusive, top),
        ]
    )


def yappi_stats(prof_dir: Path, requests_done: int, args: argparse.Namespace) -> str:
    files = sorted(prof_dir.glob("worker-*.pstat"))
    if not files:
        raise RuntimeError("no worker wrote its profile")
    text = io.StringIO()
    stats = pstats.Stats(*map(str, files), stream=text)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(str(args.save / f"{args.app}-{args.endpoint}.pstat"))
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in table.values())
    text.write(f"profiled CPU (yappi, its overhead included): {total * 1000 / requests_done:.3f} ms per request\n")
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    return text.getvalue()


def profile(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="sluice-profile-serving-"))
    prof_dir = workdir / "profiles"
    redis_proc, redis_url = start_redis(workdir)
    server = None
    try:
        env = intake.environment(workdir, redis_url)
        if not args.no_profile:
            env["SLUICE_PROFILE_DIR"] = str(prof_dir)
            env["SLUICE_SERVING"] = str(args.tree / "app" / "web" / "serving.py")
            env["SLUICE_PROFILER"] = args.profiler
        config = None if args.no_profile else PROFILED
        server, port = intake.serve(workdir, f"profile-{args.app}", APPS[args.app], env, args.tree, config)
        name = next(n for n in intake.endpoints() if args.endpoint in n)
        path, body, headers = intake.endpoints()[name]
        url = f"http://127.0.0.1:{port}{path}"
        first = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)
        first.raise_for_status()
        assert server.proc is not None
        before = intake.cpu_seconds([server.proc.pid])
        load = intake.hey(url, body, headers, args.seconds, 16)
        cpu_ms = (intake.cpu_seconds([server.proc.pid]) - before) * 1000 / max(load.requests, 1)
        server.stop(timeout=30)
        out = [
            f"{args.app} {path} ({args.tree}): {load.requests} requests in {args.seconds:.0f} s, {load.rps:.0f} req/s, "
            f"{load.errors} non-2xx; workers' CPU {cpu_ms:.3f} ms per request (/proc"
            + (")" if args.no_profile else ", profiler included)")
        ]
        if args.no_profile:
            return out[0]
        if env.get("SLUICE_PROFILER") == "yappi":
            out.append(yappi_stats(prof_dir, load.requests, args))
        else:
            files = sorted(prof_dir.glob("worker-*.stacks"))
            if not files:
                raise RuntimeError(f"no worker wrote its samples; see {server.log}")
            stacks = read_stacks(files)
            if args.save:  # folded stacks, as flame graph tools read them
                args.save.mkdir(parents=True, exist_ok=True)
                folded = "".join(f"{';'.join(stack)} {count}\n" for stack, count in stacks.items())
                (args.save / f"{args.app}-{args.endpoint}.folded").write_text(folded)
            out.append(shares(stacks, cpu_ms, args.top))
        return "\n\n".join(out)
    finally:
        if server is not None:
            server.stop(timeout=30)
        redis_proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_serving")
    parser.add_argument("--endpoint", choices=["deploy", "circleci"], default="deploy")
    parser.add_argument("--app", choices=sorted(APPS), default="sluice")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--tree", type=Path, default=intake.REPO, help="the checkout to serve (default: this one)")
    parser.add_argument("--profiler", choices=["sample", "yappi"], default="sample", help="see profiled_serving.py")
    parser.add_argument("--save", type=Path, help="keep the samples (folded stacks) or yappi's pstat in DIR")
    parser.add_argument("--no-profile", action="store_true", help="serve without the profiler (its CPU per request)")
    print(profile(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
