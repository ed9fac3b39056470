"""Several workers, proven: N `sluice worker` processes (each with its standby scheduler) on one
Redis run many releases while workers are SIGKILLed at random and restarted, and an operator
aborts some releases meanwhile; then every release's records in Redis are checked
(chaos/swarm_checks.py).

Real: Redis (AOF on), the worker processes (RQ, the scheduler threads and their leader lease,
ticks, leases and fences, hook deliveries), the intake and control functions the web process
calls, and an HTTP hook receiver (chaos/receiver.py). Stubbed: Prometheus (the scale
benchmark's nginx stub: every version looks the same, so every release not aborted should be
promoted) and the router (chaos/swarm_worker.py: its weights in Redis, every write logged), so
that 1,000 releases fit on two cores. The real stack's version of this fault, with HAProxy and
Prometheus, is `several-workers-under-kills` in chaos/faults.py.

python -m chaos.swarm --releases 1000 --workers 4      # the proof in docs/reliability.md
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests

from app.cli.demo.stack import Process, free_port, start_redis, wait_until
from app.config_file.loader import parse_config
from app.context import Context
from app.release.control import ControlError, control
from app.release.intake import start_release
from chaos.receiver import HookReceiver
from chaos.stack import wait_for_leader
from chaos.swarm_checks import SwarmResult, check_all
from chaos.swarm_worker import RecordingRouter
from workers.scheduler import LEADER_TTL

REPO = Path(__file__).resolve().parents[1]
APPLICATION = "swarm"
HOOK = "swarm-receiver"
CANDIDATE = "1.0.1"
RQ_QUEUE = "rq:queue:sluice"  # RQ's list of waiting job ids (workers/scheduler.py QUEUE_NAME)


@dataclass
class Plan:
    releases: int = 60
    workers: int = 4
    interval: float = 2.0
    steps: tuple[tuple[int, float], ...] = ((10, 6.0), (50, 4.0), (100, 0.0))
    spread: float = 10.0  # the releases' first ticks spread over this long, as independent deploys are
    kill_every: tuple[float, float] = (2.0, 6.0)  # a SIGKILL every uniform(a, b) seconds
    restart_after: float = 1.0  # a supervisor restarts the killed worker this much later
    aborts: float = 0.1  # the share of releases an operator aborts at a random moment
    timeout: float = 600.0  # for all releases to end and their deliveries to settle
    seed: int = 21


@dataclass
class Swarm:
    """The running pieces, and what was done to them."""

    plan: Plan
    workdir: Path
    ctx: Context
    receiver: HookReceiver
    env: dict[str, str]
    workers: list[Process] = field(default_factory=list)
    kills: list[tuple[float, str]] = field(default_factory=list)  # (when, which worker)
    aborted: set[str] = field(default_factory=set)  # releases the operator's abort was taken for
    done: threading.Event = field(default_factory=threading.Event)
    queued_max: int = 0  # the most RQ jobs seen waiting at once


def config_for(plan: Plan, services: list[str], prometheus_url: str, receiver_url: str) -> str:
    steps = ", ".join(f"{{weight: {w}, duration: {d:g}s}}" if d else f"{{weight: {w}}}" for w, d in plan.steps)
    listed = "\n".join(f'      - {{name: {s}, stable_version: "1.0.0", policy: p}}' for s in services)
    return f"""
prometheus: {{url: "{prometheus_url}", timeout: 2s}}
applications:
  - name: {APPLICATION}
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
{listed}
policies:
  - name: p
    interval: {plan.interval:g}s
    steps: [{steps}]
    judge: {{warmup: 0s}}
    checks:
      - {{name: fast, type: latency, under: 500ms, min: 0.1}}
hooks:
  - name: {HOOK}
    type: webhook
    on: [started, step_passed, succeeded, failed, aborted]
    url: "{receiver_url}"
    timeout: 5s
"""


def start_prometheus_stub(workdir: Path, procs: list[Process]) -> str:
    port = free_port()
    stub = Process("prometheus-stub", [sys.executable, "-m", "chaos.swarm_prometheus", str(port)], workdir)
    stub.env = {"PYTHONPATH": str(REPO)}
    procs.append(stub.start())
    url = f"http://127.0.0.1:{port}"
    answers = lambda: requests.get(url + "/api/v1/query", timeout=1).ok  # noqa: E731
    wait_until(answers, 15, "the Prometheus stub", stub.proc, stub.log)
    return url


def start(plan: Plan, workdir: Path) -> tuple[Swarm, list[Process]]:
    """Redis, the Prometheus stub, the hook receiver, and the workers; returns what to stop."""
    services = [f"svc-{i:05d}" for i in range(plan.releases)]
    redis_proc, redis_url = start_redis(workdir, persistent=True)
    procs = [redis_proc]
    try:
        prom_url = start_prometheus_stub(workdir, procs)
    except BaseException:
        redis_proc.stop()
        raise
    receiver = HookReceiver().start()
    config_path = workdir / "sluice.yaml"
    config_path.write_text(config_for(plan, services, prom_url, receiver.url))
    ctx = Context(config=parse_config(config_path.read_text()), redis_url=redis_url, prometheus_url=prom_url)
    # The operator's aborts (app/release/control.py) set weights too: on the same router as the workers.
    ctx._routers[APPLICATION] = RecordingRouter(ctx.store.r)
    env = {
        "SLUICE_CONFIG": str(config_path),
        "REDIS_URL": redis_url,
        "PROMETHEUS_URL": prom_url,
        "SLUICE_LOG_LEVEL": "INFO",  # the scheduler logs "leading" when it takes over
        "PYTHONPATH": str(REPO),
        "SLUICE_API_TOKEN": "swarm",
    }
    swarm = Swarm(plan, workdir, ctx, receiver, env)
    swarm.workers = [
        Process(f"worker-{w}", [sys.executable, "-m", "chaos.swarm_worker"], workdir, env=env).start()
        for w in range(plan.workers)
    ]
    return swarm, procs


def announce(swarm: Swarm) -> list[str]:
    """Every release started through the intake (as POST /hooks/deploy does), their first ticks
    spread over `plan.spread` seconds."""
    ids = []
    t0 = time.time() + 1
    for i in range(swarm.plan.releases):
        release = start_release(swarm.ctx, f"svc-{i:05d}", CANDIDATE).release
        swarm.ctx.store.schedule_tick(release.id, release.seq, t0 + i * swarm.plan.spread / swarm.plan.releases)
        ids.append(release.id)
    return ids


def kill_at_random(swarm: Swarm, rng: random.Random) -> None:
    """SIGKILL a worker every few seconds, every other time the one whose scheduler leads (the others
    are standbys: one of them must take over), else one at random; restart it `restart_after`
    later, as a supervisor would."""
    while not swarm.done.wait(rng.uniform(*swarm.plan.kill_every)):
        # A leader's turn waits for the standby's takeover after the last leader's death.
        lead = wait_for_leader(swarm.workers, 2 * LEADER_TTL, swarm.done) if len(swarm.kills) % 2 == 0 else None
        if swarm.done.is_set():
            return
        victim = lead or rng.choice(swarm.workers)
        victim.kill()
        swarm.kills.append((time.time(), victim.name + (" (leading)" if lead else "")))
        time.sleep(swarm.plan.restart_after)
        victim.start()


def abort_some(swarm: Swarm, ids: list[str], rng: random.Random) -> None:
    """An operator aborts a share of the releases at random moments, through the function the
    API's POST /releases/<id>/abort calls: its lock races the workers' ticks."""
    chosen = rng.sample(ids, int(len(ids) * swarm.plan.aborts))
    lifetime = swarm.plan.spread + sum(d for _, d in swarm.plan.steps)
    moments = sorted((rng.uniform(0, lifetime), rid) for rid in chosen)
    started = time.time()
    for at, rid in moments:
        if swarm.done.wait(max(0.0, started + at - time.time())):
            return
        with suppress(ControlError):  # finished already, or busy for 10 s: not aborted
            control(swarm.ctx, rid, "abort", actor="swarm", reason="operator abort during the swarm")
            swarm.aborted.add(rid)


def wait_until_settled(swarm: Swarm, ids: list[str], say: Callable[[str], None]) -> bool:
    """Until every release has ended and none of its hook deliveries is pending."""
    deadline = time.time() + swarm.plan.timeout
    last = 0.0
    while time.time() < deadline:
        releases = swarm.ctx.store.get_many(ids)
        ended = [r for r in releases if r.terminal and r.weights_applied]
        deliveries = swarm.ctx.store.deliveries([d for r in releases for d in r.hooks])
        pending = sum(d.state == "pending" for d in deliveries)
        queued = int(swarm.ctx.store.r.llen(RQ_QUEUE))
        swarm.queued_max = max(swarm.queued_max, queued)
        if time.time() - last > 10:
            say(
                f"  {len(ended)}/{len(ids)} ended, {pending} deliveries pending, {queued} jobs queued, "
                f"{len(swarm.kills)} kills"
            )
            last = time.time()
        if len(ended) == len(ids) and pending == 0:
            return True
        # Reading every release and delivery costs this process CPU the workers need: with 1,000
        # releases, look every 5 s.
        time.sleep(max(1.0, len(ids) / 200))
    return False


def run(plan: Plan, workdir: Path, say: Callable[[str], None] = print) -> SwarmResult:
    rng = random.Random(plan.seed)
    swarm, procs = start(plan, workdir)
    started = time.time()
    try:
        ids = announce(swarm)
        say(f"swarm: {len(ids)} releases announced, {plan.workers} workers")
        threads = [
            threading.Thread(target=kill_at_random, args=(swarm, rng), daemon=True),
            threading.Thread(target=abort_some, args=(swarm, ids, random.Random(plan.seed + 1)), daemon=True),
        ]
        for t in threads:
            t.start()
        settled = wait_until_settled(swarm, ids, say)
        swarm.done.set()
        for t in threads:
            t.join(timeout=30)
        seconds = time.time() - started
        return check_all(swarm, ids, settled, seconds)
    finally:
        swarm.done.set()
        for w in swarm.workers:
            w.stop()
        for p in procs:
            p.stop()
        swarm.receiver.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.swarm", description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=Plan.releases)
    parser.add_argument("--workers", type=int, default=Plan.workers)
    parser.add_argument("--interval", type=float, default=Plan.interval)
    parser.add_argument("--spread", type=float, default=Plan.spread)
    parser.add_argument("--timeout", type=float, default=Plan.timeout, help="for every release to end, seconds")
    args = parser.parse_args(argv)
    plan = Plan(args.releases, args.workers, args.interval, spread=args.spread, timeout=args.timeout)
    with tempfile.TemporaryDirectory(prefix="sluice-swarm-") as tmp:
        result = run(plan, Path(tmp), say=lambda m: print(m, flush=True))
    print(result.summary())
    for kind, n in result.problem_kinds().most_common():
        print(f"  {n} × {kind}")
    for problem in result.problems[:20]:
        print("  problem:", problem)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
