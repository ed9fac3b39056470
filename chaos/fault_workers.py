"""The several-workers fault on the real stack: four `sluice worker` processes (so four schedulers,
one leading) share the releases while workers are SIGKILLed at random, every other kill the
leading scheduler's, and restarted a second later as a supervisor would.

The harness's invariants (chaos/harness.py) are the ones that matter with several workers: one
`started` and one end per release, each step passed once and no sooner than its duration, no
router change confirmed twice, one hook delivery per event, each delivered and received. The same
fault with 1,000 releases (stub Prometheus and router) is chaos/swarm.py.
"""

from __future__ import annotations

import dataclasses
import random
import time
from concurrent.futures import ThreadPoolExecutor

from chaos.harness import Fault, Phase, Role, announce_one
from chaos.stack import ChaosStack, wait_for_leader
from workers.scheduler import LEADER_TTL

WORKERS = 4
RELEASES = 12  # half good, half bad: each has its own two gunicorn services, so the stack stays small
KILLS = 10
GOOD = Role("good", "promoted", traffic="fleet")
BAD = Role("bad", "rolled_back", candidate=(("SCN_ERROR_RATE", "0.1"),), traffic="fleet")


def _roles() -> tuple[Role, ...]:
    return tuple(
        dataclasses.replace(BAD if i % 2 else GOOD, key=f"{'bad' if i % 2 else 'good'}-{i // 2 + 1:02d}")
        for i in range(RELEASES)
    )


def _more_workers(stack: ChaosStack) -> None:
    stack.add_workers(WORKERS - 1)


def _one_worker(stack: ChaosStack) -> None:
    stack.remove_workers()


def kill_workers(phase: Phase) -> None:
    """KILLS SIGKILLs 2-6 s apart while the releases run, of the leading scheduler's worker every
    other time (a standby must take over the schedule), else of a worker at random."""
    rng = random.Random(21)
    kills: list[str] = []
    phase.fault_started = time.time()
    while len(kills) < KILLS and not phase.done.is_set():
        phase.sleep(rng.uniform(2.0, 6.0))
        if phase.done.is_set():
            break
        workers = phase.stack.workers
        # A leader's turn waits for the standby's takeover after the last leader's death.
        lead = wait_for_leader(workers, 2 * LEADER_TTL, phase.done) if len(kills) % 2 == 0 else None
        victim = lead or rng.choice(workers)
        phase.stack.kill(victim)
        kills.append("leading" if lead else "other")
        time.sleep(1.0)
        victim.start()
        phase.fault_ended = time.time()
    took_over = sum(w.log.read_text(errors="replace").count("scheduler: leading") for w in phase.stack.workers)
    phase.notes.append(
        f"{len(kills)} SIGKILLs of {WORKERS} workers ({kills.count('leading')} of the leading scheduler's), "
        f"each restarted 1 s later; the scheduler's lead was taken {took_over} times in the whole run"
    )
    phase.checks.append(("the leading scheduler's worker was killed at least twice", kills.count("leading") >= 2))


def announce_all(phase: Phase) -> None:
    """Every release announced at once, one sender each, retried as CI would."""
    with ThreadPoolExecutor(max_workers=len(phase.services)) as pool:
        list(pool.map(lambda role: announce_one(phase, role), list(phase.services)))


SEVERAL_WORKERS = Fault(
    "several-workers-under-kills",
    f"{WORKERS} workers (each with its standby scheduler); {KILLS} SIGKILLs of a worker, every other one "
    "of the leading scheduler's, each restarted 1 s later",
    f"random moments over {RELEASES} releases announced at once",
    f"{RELEASES // 2} good promoted, {RELEASES // 2} bad rolled back; each decided once, each step applied once, "
    "each hook delivered once; none stuck",
    _roles(),
    kill_workers,
    announce=announce_all,
    max_s=300.0,
    setup=_more_workers,
    teardown=_one_worker,
)
