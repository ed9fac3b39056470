"""Where an intake request's time goes: the benchmark's requests, in this process, profiled and counted.

    python -m benchmarks.profile_intake [--requests 3000] [--top 25] [--save FILE]

Starts Redis, builds Sluice's app and the bare Flask baseline (benchmarks/bare_app.py) with the
intake benchmark's configuration and secrets (benchmarks/intake.py), sends each endpoint's request
once (the deploy starts its release; the CircleCI job is recorded as ignored), then sends it
`--requests` more times through Flask's test client: the duplicates the benchmark measures. Reported
per endpoint: CPU per request (time.process_time) for Sluice and for the bare app, Redis commands
per request (INFO commandstats), and cProfile's top functions by own and cumulative time.

The test client skips gunicorn, gevent and the socket: what is left is Sluice's own cost.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from app.cli.demo.stack import start_redis
from benchmarks import intake


def _env(workdir: Path, redis_url: str) -> None:
    config = workdir / "sluice.yaml"
    config.write_text(intake.bench_config())
    os.environ.update(
        {
            "SLUICE_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "SLUICE_API_TOKEN": intake.TOKEN,
            "SLUICE_DEPLOY_SECRET": intake.DEPLOY_SECRET,
            "CIRCLECI_WEBHOOK_SECRET": intake.CIRCLECI_SECRET,
            "SLUICE_LOG_LEVEL": "WARNING",
            "SLUICE_INTAKE_RATE": "1000000 per minute",
            "SLUICE_ALLOW_UNTIMED_SIGNATURE": "1",
        }
    )


def _commands(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def _cpu_per_request(send: Callable[[], int], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        send()
    return (time.process_time() - start) / n * 1000


def profile(n: int, top: int, save: Path | None) -> str:
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

            def send(client=ours, path=path, body=body, hdrs=hdrs) -> int:  # type: ignore[no-untyped-def]
                status = client.post(path, data=body, headers=hdrs).status_code
                assert status < 300, status
                return status

            send()  # the first: starts the release, or records the ignored job
            for _ in range(200):  # warm-up
                send()
            before = _commands(counter)
            cpu = _cpu_per_request(send, n)
            per_request = (_commands(counter) - before - 1) / n  # INFO itself counts once
            cpu_bare = _cpu_per_request(lambda path=path: bare.post(path, data=body, headers=hdrs).status_code, n)
            prof = cProfile.Profile()
            prof.runcall(lambda: [send() for _ in range(n)])
            if save:
                prof.dump_stats(f"{save}.{path.strip('/').replace('/', '-')}")
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text).strip_dirs()
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            out.append(
                f"## {name}\n\nCPU per request: Sluice {cpu:.3f} ms, bare Flask {cpu_bare:.3f} ms "
                f"({cpu_bare / cpu:.2f} of Sluice's); Redis commands per request: {per_request:.2f}\n\n{text.getvalue()}"
            )
        return "\n".join(out)
    finally:
        redis_proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_intake")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="write each endpoint's cProfile stats to FILE.<endpoint>")
    args = parser.parse_args()
    print(profile(args.requests, args.top, args.save))
    return 0


if __name__ == "__main__":
    sys.exit(main())
