"""Where an intake request's time goes: the benchmark's requests, in this process, profiled and counted.

    python -m benchmarks.profile_intake [--requests 2000] [--rounds 5] [--top 25] [--save FILE]

Starts Redis, builds Sluice's app and the bare Flask baseline (benchmarks/bare_app.py) with the
intake benchmark's configuration and secrets (benchmarks/intake.py), sends each endpoint's request
once (the deploy starts its release; the CircleCI job is recorded as ignored), then sends it
`--requests` more times through Flask's test client: the duplicates the benchmark measures. Reported
per endpoint: CPU per request (time.process_time) for Sluice and for the bare app, in `--rounds`
alternating rounds (median [min..max]: the machine is shared); Redis round trips per request (calls
of redis-py's execute_command, in the profile) and commands (INFO stats, those run inside scripts
included); and cProfile's top functions by own and cumulative time.

The test client skips gunicorn, gevent and the socket: what is left is Sluice's own cost.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask.testing import FlaskClient

from app.cli.demo.stack import start_redis
from benchmarks import intake


def _env(workdir: Path, redis_url: str) -> None:
    os.environ.update(intake.environment(workdir, redis_url))


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def _round_trips(stats: pstats.Stats) -> int:
    """Calls of redis-py's Redis.execute_command: one per round trip (a pipeline's is another path)."""
    table = stats.stats  # type: ignore[attr-defined]
    return sum(v[1] for (file, _, name), v in table.items() if file.endswith("client.py") and name == "execute_command")


def _cpu_per_request(send: Callable[[], int], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        send()
    return (time.process_time() - start) / n * 1000


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}..{max(values):.3f}]"


def profile(n: int, rounds: int, top: int, save: Path | None) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="sluice-profile-intake-"))
    redis_proc, redis_url = start_redis(workdir)
    try:
        _env(workdir, redis_url)
        from app.web import create_app
        from benchmarks.bare_app import create_app as create_bare

        ours, bare = create_app().test_client(), create_bare().test_client()
        counter = redis.Redis.from_url(redis_url)
        out = []
        for name, (path, body, headers) in intake.endpoints().items():
            hdrs = {"Content-Type": "application/json", **headers}

            def send(client: FlaskClient = ours, path: str = path, body: bytes = body, hdrs: dict = hdrs) -> int:
                status = client.post(path, data=body, headers=hdrs).status_code
                assert status < 300, status
                return status

            def send_bare(path: str = path, body: bytes = body, hdrs: dict = hdrs) -> int:
                return bare.post(path, data=body, headers=hdrs).status_code

            send()  # the first: starts the release, or records the ignored job
            for _ in range(200):  # warm-up
                send()
            before = _commands(counter)
            send()
            commands = _commands(counter) - before - 1  # INFO itself counts once
            cpu, cpu_bare = [], []
            for _ in range(rounds):  # alternating: both sides see the same load
                cpu.append(_cpu_per_request(send, n))
                cpu_bare.append(_cpu_per_request(send_bare, n))
            ratios = [b / o for o, b in zip(cpu, cpu_bare, strict=True)]
            prof = cProfile.Profile(time.process_time)  # CPU, not the wait for Redis
            prof.runcall(lambda: [send() for _ in range(n)])
            if save:
                prof.dump_stats(f"{save}.{path.strip('/').replace('/', '-')}")
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            trips = _round_trips(stats) / n
            stats.strip_dirs()
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            out.append(
                f"## {name}\n\nCPU ms per request, median [min..max] of {rounds} rounds of {n}: Sluice {_spread(cpu)}, "
                f"bare Flask {_spread(cpu_bare)}; bare / Sluice {_spread(ratios)}\n"
                f"Redis per request: {trips:.2f} round trips, {commands} commands\n\n{text.getvalue()}"
            )
        return "\n".join(out)
    finally:
        redis_proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_intake")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="write each endpoint's cProfile stats to FILE.<endpoint>")
    args = parser.parse_args()
    print(profile(args.requests, args.rounds, args.top, args.save))
    return 0


if __name__ == "__main__":
    sys.exit(main())
