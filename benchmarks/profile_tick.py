"""Where a tick's time goes: one worker's ticks, in this process, profiled and counted.

    python -m benchmarks.profile_tick [--releases 300] [--rounds 3] [--direct] [--top 25] [--save FILE]
    python -m benchmarks.profile_tick --without packed_counts,batched_metrics --rounds 6

Starts Redis and the scale benchmark's Prometheus stub (benchmarks/scale.py: nginx plus the
grouped-query stub), creates N releases of the scale benchmark's configuration, warms them up
(start, weights applied, a first evaluation), then runs `--rounds` rounds in which every release is
due once. By default a round goes the way production goes: the scheduler's `enqueue_due` batches
the due ticks into RQ jobs and an in-process RQ worker (the one `sluice worker` runs) works them in
burst mode; `--direct` calls `workers.tick.run_ticks` on the same batches instead, which leaves
RQ's own cost out. The router is in-memory (benchmarks/scale_worker.py), so what is measured is
Sluice's cost. Reported:

- CPU per tick: this process's CPU time (time.process_time, all threads) over the rounds / ticks;
  less disturbed by other load on the machine than wall time;
- Redis commands per tick: INFO commandstats before and after, by command (a script's own count);
- Redis round trips per tick: requests this process sent (a pipeline or a script call is one);
- where the time goes: cProfile over the rounds, in CPU time (process_time), by cumulative and by
  own time (a batch's ticks then run on one thread: cProfile sees only the thread that enables it);
- with `--without LEVER,...`: rounds alternate between everything on and those levers off, and
  each side's CPU per tick is reported (median [min..max]): a lever's effect measured side by
  side, under whatever else the machine runs at the time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path

import redis

from app.cli.demo.stack import Process, start_redis
from app.config_file.loader import parse_config
from app.config_file.schema import ApplicationConfig
from app.context import Context, set_context
from app.core.config.policy import PolicyConfig
from app.core.judge.memo import direct
from app.core.models import Release
from app.release import engine as engine_module
from app.release import observe as observe_module
from app.release.intake import start_release
from app.store import keys
from app.store import queues as rq_queues
from app.store.commits import Commits
from app.store.metrics import MetricsStore
from benchmarks.common import spread
from benchmarks.scale import config_for, start_prometheus_stub
from benchmarks.scale_worker import InstantRouter
from benchmarks.tick_before import watched_commit
from integrations.prometheus import batch as grouped_module
from workers import tick as tick_module
from workers.scheduler import QUEUE_NAME, TICK_BATCH, enqueue_due


def command_counts(client: redis.Redis) -> dict[str, int]:
    """Redis commands processed so far, by command (INFO commandstats)."""
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def due_ticks(ctx: Context, ids: list[str]) -> list[tuple[str, int]]:
    return [(r.id, r.seq) for r in ctx.store.get_many(ids) if r is not None and not r.terminal]


def one_round(ctx: Context, ids: list[str], direct: bool) -> int:
    """Every release ticked once; returns how many ticks ran."""
    batch = due_ticks(ctx, ids)
    if direct:
        for i in range(0, len(batch), TICK_BATCH):
            tick_module.run_ticks(batch[i : i + TICK_BATCH])
        return len(batch)
    now = time.time()
    for release_id, seq in batch:
        ctx.store.schedule_tick(release_id, seq, now)
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    while enqueue_due(ctx.store, queue, now + 1):
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
    return len(batch)


# Round trips: every request this process sends Redis (a command, a pipeline or a script call is
# one), counted where redis-py writes to the socket. INFO commandstats counts the commands a script
# runs too, so it does not show what a script saves.
_SENDS = [0]
_real_send = redis.connection.AbstractConnection.send_packed_command


def _counted_send(self: redis.connection.AbstractConnection, command: object, check_health: bool = True) -> None:
    _SENDS[0] += 1
    _real_send(self, command, check_health)


redis.connection.AbstractConnection.send_packed_command = _counted_send  # type: ignore[method-assign]


def measure(ctx: Context, ids: list[str], rounds: int, direct: bool, profiler: cProfile.Profile | None) -> dict:
    client = ctx.store.r
    cmds0, cpu0, wall0 = command_counts(client), time.process_time(), time.perf_counter()
    sends0 = _SENDS[0]
    ticks = 0
    if profiler:
        profiler.enable()
    for _ in range(rounds):
        ticks += one_round(ctx, ids, direct)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cmds1 = command_counts(client)
    by_command = {k: v - cmds0.get(k, 0) for k, v in cmds1.items() if v - cmds0.get(k, 0)}
    by_command.pop("info", None)  # our own
    trips = _SENDS[0] - sends0 - 2  # less our two INFO
    return {"ticks": ticks, "cpu": cpu, "wall": wall, "commands": by_command, "round_trips": trips}


@contextmanager
def _replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """`owner.name` is `value` while the block runs (a lever turned off), then what it was."""
    real = getattr(owner, "__dict__", {}).get(name, getattr(owner, name))  # a staticmethod stays one
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, real)


def _without_packed_counts() -> AbstractContextManager[None]:
    return _replaced(observe_module, "prime_counts", lambda ctx, releases, at: 0)


def _without_batched_metrics() -> AbstractContextManager[None]:
    return _replaced(MetricsStore, "batched", lambda self: nullcontext())


def _without_packed_before() -> AbstractContextManager[None]:
    real = observe_module.counts_spans

    def ending_now(release: Release, policy: PolicyConfig, now: float) -> list[tuple[str, float, float | None]]:
        return [span for span in real(release, policy, now) if span[2] is None]

    return _replaced(observe_module, "counts_spans", ending_now)


def _without_judge_memo() -> AbstractContextManager[None]:
    return _replaced(tick_module, "JUDGE_MEMO", direct)


def _without_one_rpush() -> AbstractContextManager[None]:
    def one_by_one(pipe, rid, results, events):  # as before: one RPUSH each
        for res in results:
            pipe.rpush(keys.release_evaluations(rid), res.model_dump_json())
        for ev in events:
            pipe.rpush(keys.release_events(rid), ev.model_dump_json())

    return _replaced(Commits, "_queue_records", staticmethod(one_by_one))


def _without_fast_copy() -> AbstractContextManager[None]:
    return _replaced(engine_module, "deep_copy", lambda value: value.model_copy(deep=True))


def _without_primed_threads() -> AbstractContextManager[None]:
    return _replaced(tick_module, "PRIMED_TICK_THREADS", tick_module.TICK_THREADS)


def _without_packed_checks() -> AbstractContextManager[None]:
    return _replaced(grouped_module, "PACKED", False)


def _without_service_index() -> AbstractContextManager[None]:
    def scan(self: ApplicationConfig, name: str) -> object:
        return next((s for s in self.services if s.name == name), None)

    return _replaced(ApplicationConfig, "service", scan)


def _without_lua_commit() -> AbstractContextManager[None]:
    return _replaced(Commits, "commit", watched_commit)


def _without_batch_leases() -> AbstractContextManager[None]:
    return _replaced(tick_module, "batch_leases", lambda ctx, batch: nullcontext(None))


# What `--without` can turn off, to measure a lever side by side with everything on.
LEVERS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "packed_counts": _without_packed_counts,  # the judge's counts: one request a batch (observe.prime_counts)
    "packed_before": _without_packed_before,  # stable's counts before the release in that request too (`@`)
    "batched_metrics": _without_batched_metrics,  # tick metrics: one Redis write a batch (MetricsStore.batched)
    # The judge's statistics remembered while the counts do not change (app/release/judge_memo.py).
    # The scale stub's counts move every 15 s per series (SLUICE_BENCH_SCRAPE_SECONDS; 0: never).
    "judge_memo": _without_judge_memo,
    "one_rpush": _without_one_rpush,  # a commit's evaluations (and events) in one RPUSH, not one each
    "fast_copy": _without_fast_copy,  # the decided release copied by app/core/copies.py, not deepcopy
    # A batch whose queries are primed ticks on PRIMED_TICK_THREADS (2), not TICK_THREADS (8).
    "primed_threads": _without_primed_threads,
    "packed_checks": _without_packed_checks,  # a batch's grouped check queries in one request, not one each
    "service_index": _without_service_index,  # a release's service found by name, not by a scan of them all
    # A batch's leases in one pipeline, one heartbeat thread, one release; its releases read under them.
    "batch_leases": _without_batch_leases,
    "lua_commit": _without_lua_commit,  # the fenced commit in one Lua script, not WATCH + MGET + MULTI/EXEC
}


def side_by_side(ctx: Context, ids: list[str], rounds: int, direct: bool, without: list[str]) -> None:
    """Rounds alternate between everything on and `without` off; CPU per tick of each, median."""
    on: list[float] = []
    off: list[float] = []
    cmds_on: list[float] = []
    cmds_off: list[float] = []
    trips_on: list[float] = []
    trips_off: list[float] = []
    for _ in range(rounds):
        m = measure(ctx, ids, 1, direct, None)
        on.append(m["cpu"] / m["ticks"] * 1000)
        cmds_on.append(sum(m["commands"].values()) / m["ticks"])
        trips_on.append(m["round_trips"] / m["ticks"])
        with ExitStack() as stack:
            for name in without:
                stack.enter_context(LEVERS[name]())
            m = measure(ctx, ids, 1, direct, None)
        off.append(m["cpu"] / m["ticks"] * 1000)
        cmds_off.append(sum(m["commands"].values()) / m["ticks"])
        trips_off.append(m["round_trips"] / m["ticks"])
    print(
        f"side by side, {rounds} alternating rounds: CPU ms/tick all on {spread(on)}, without {','.join(without)} "
        f"{spread(off)} (ratio of medians {statistics.median(off) / statistics.median(on):.2f}); Redis commands/tick "
        f"{statistics.median(cmds_on):.1f} vs {statistics.median(cmds_off):.1f}, round trips/tick "
        f"{statistics.median(trips_on):.1f} vs {statistics.median(trips_off):.1f}"
    )


def report(label: str, m: dict) -> None:
    ticks = max(1, m["ticks"])
    total = sum(m["commands"].values())
    print(
        f"{label}: {m['ticks']} ticks, CPU {m['cpu'] / ticks * 1000:.2f} ms/tick, "
        f"wall {m['wall'] / ticks * 1000:.2f} ms/tick, Redis {total / ticks:.1f} commands/tick "
        f"({m['round_trips'] / ticks:.1f} round trips)"
    )
    top = sorted(m["commands"].items(), key=lambda kv: -kv[1])
    print("  by command (per tick): " + ", ".join(f"{k} {v / ticks:.2f}" for k, v in top[:14]))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_tick", description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--direct", action="store_true", help="call run_ticks directly (RQ's cost left out)")
    parser.add_argument(
        "--threads",
        type=int,
        help="a batch's tick threads, primed or not (default: SLUICE_TICK_THREADS, 8, and 2 primed)",
    )
    parser.add_argument(
        "--without", help=f"comma-separated levers to measure side by side, off vs on: {', '.join(LEVERS)}"
    )
    parser.add_argument("--top", type=int, default=25, help="profile rows shown (0: no profile)")
    parser.add_argument("--save", type=Path, help="write the cProfile stats here (for snakeviz, pstats)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-profile-"))
    procs: list[Process] = []
    try:
        redis_proc, redis_url = start_redis(workdir)
        prom_procs, prom_url = start_prometheus_stub(workdir)
        procs += [redis_proc, *prom_procs]
        config = parse_config(config_for(args.releases, prom_url))
        ctx = Context(config=config, redis_url=redis_url, prometheus_url=prom_url)
        for app in config.applications:
            ctx._routers[app.name] = InstantRouter()
        set_context(ctx)
        if args.threads:
            tick_module.TICK_THREADS = tick_module.PRIMED_TICK_THREADS = args.threads
        ids = [start_release(ctx, f"svc-{i:05d}", "1.0.1").release.id for i in range(args.releases)]
        report("warm-up (start, then a first evaluation)", measure(ctx, ids, 2, args.direct, None))
        if args.without:
            side_by_side(ctx, ids, args.rounds, args.direct, args.without.split(","))
            return 0
        # CPU time, not wall time: on a shared machine, waiting (for Redis, the stub, the scheduler)
        # would otherwise look like work.
        profiler = cProfile.Profile(time.process_time) if args.top or args.save else None
        if profiler:  # cProfile sees only the thread that enables it: the batch's ticks run on it too
            tick_module.TICK_THREADS = tick_module.PRIMED_TICK_THREADS = 1
        m = measure(ctx, ids, args.rounds, args.direct, profiler)
        report(f"measured ({'run_ticks directly' if args.direct else 'through RQ'})", m)
        mem = int(ctx.store.r.info("memory")["used_memory"])
        print(f"Redis used_memory: {mem / args.releases / 1024:.1f} KiB per release")
        if profiler and args.save:
            profiler.dump_stats(args.save)
        if profiler and args.top:
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
