"""What the several-workers proof (chaos/swarm.py) asserts, read from Redis after the run.

For every release:

- decided once: it ended (terminal, its last weights confirmed), with exactly one end event
  (`succeeded`, `failed` or `aborted`) and one `started` (none when the abort came before its first
  tick); the end is the one it should have:
  `aborted` when the operator's abort was taken, `succeeded` otherwise (the stub Prometheus makes
  every candidate look like stable, so nothing else may fail it);
- every step applied once: each step passed once (a promoted release passed every step); the
  `weights_set` events (the act records) go through the policy's weights in order, each once, with
  no `weights_drifted` (the router never changes by itself here: a drift would be a stale worker's
  write); and the router's own write log (chaos/swarm_worker.py) shows the same sequence: every
  recorded step reached the router, nothing reached it that is not recorded, and its final weights
  are the last recorded. A write may repeat (same weights again) only when a worker died between
  the write and its record, so repeats are counted and bounded by the number of kills;
- every hook delivered once: one delivery record per event that fired (per step for
  `step_passed`), no two delivery ids for one event, each `delivered`, each received by the
  receiver at least once, and the receiver got no id the release does not record. The receiver
  may see one id twice when its sender was killed mid-request (at-least-once delivery; the
  `Sluice-Delivery` id lets a receiver drop the repeat): those re-sends are counted, and bounded
  by the kills, since a worker runs one delivery at a time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.models import Release
from chaos.swarm_worker import APPLIED, WEIGHTS

if TYPE_CHECKING:
    from chaos.swarm import Swarm

CANDIDATE = "1.0.1"
HOOKED = ("started", "step_passed", "succeeded", "failed", "aborted")
ENDS = ("succeeded", "failed", "aborted")


@dataclass
class SwarmResult:
    releases: int
    workers: int
    seconds: float
    settled: bool
    outcomes: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    leader_kills: int = 0  # of the worker whose scheduler was leading
    leader_takeovers: int = 0
    queued_max: int = 0
    router_writes: int = 0
    router_repeats: int = 0
    deliveries: int = 0
    resent: int = 0
    problems: list[str] = field(default_factory=list)

    def problem_kinds(self) -> Counter[str]:
        """The problems with their ids and numbers blanked: what went wrong, how often."""
        return Counter(
            re.sub(r"\d+", "N", re.sub(r"r-[0-9]+-[0-9a-f]+", "R", p.split(": ", 1)[-1])) for p in self.problems
        )

    @property
    def passed(self) -> bool:
        return self.settled and not self.problems

    def summary(self) -> str:
        return (
            f"{'pass' if self.passed else 'FAIL'}: {self.releases} releases, {self.workers} workers, "
            f"{self.seconds:.0f} s; outcomes {dict(self.outcomes)}; {self.kills} SIGKILLs "
            f"({self.leader_kills} of the leading scheduler's worker); {self.leader_takeovers} scheduler takeovers; "
            f"{self.router_writes} router writes "
            f"({self.router_repeats} repeated); {self.deliveries} hook deliveries ({self.resent} re-sent, same id); "
            f"at most {self.queued_max} RQ jobs waiting; {len(self.problems)} problems"
        )


def candidate_weights(weights: dict[str, int] | None) -> int:
    return int((weights or {}).get(CANDIDATE, 0))


def router_log(swarm: Swarm) -> dict[str, list[int]]:
    """Service -> the candidate weight of every router write, in order."""
    writes: dict[str, list[int]] = {}
    for raw in swarm.ctx.store.r.lrange(APPLIED, 0, -1):
        record = json.loads(raw)
        writes.setdefault(record["service"], []).append(candidate_weights(record["weights"]))
    return writes


def runs(values: list[int]) -> list[int]:
    """The values with consecutive repeats collapsed: [10, 10, 50] -> [10, 50]."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def check_all(swarm: Swarm, ids: list[str], settled: bool, seconds: float) -> SwarmResult:
    result = SwarmResult(len(ids), swarm.plan.workers, seconds, settled, kills=len(swarm.kills))
    result.queued_max = swarm.queued_max
    result.leader_kills = sum(which.endswith("(leading)") for _, which in swarm.kills)
    if not settled:
        result.problems.append(f"not every release ended with its deliveries settled within {swarm.plan.timeout:.0f}s")
    writes = router_log(swarm)
    stored = swarm.ctx.store.r.hgetall(WEIGHTS).items()
    final = {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in stored}
    weights = [w for w, _ in swarm.plan.steps]
    for release in swarm.ctx.store.get_many(ids):
        result.outcomes[release.state] += 1
        problems = check_decision(swarm, release, weights)
        problems += check_router(swarm, release, writes.get(release.service, []), final.get(release.service), result)
        problems += check_deliveries(swarm, release, result)
        result.problems += [f"{release.id} ({release.service}): {p}" for p in problems]
    result.router_writes = sum(len(w) for w in writes.values())
    result.leader_takeovers = sum(w.log.read_text(errors="replace").count("scheduler: leading") for w in swarm.workers)
    if result.router_repeats > result.kills:
        result.problems.append(f"{result.router_repeats} repeated router writes, more than the {result.kills} kills")
    if result.resent > result.kills:
        result.problems.append(f"{result.resent} deliveries re-sent, more than the {result.kills} kills")
    return result


def check_decision(swarm: Swarm, release: Release, weights: list[int]) -> list[str]:
    problems = []
    events = swarm.ctx.store.events(release.id)
    types = Counter(e.type for e in events)
    expected = "aborted" if release.id in swarm.aborted else "succeeded"
    if release.state != expected:
        problems.append(f"ended {release.state} ({release.reason}), expected {expected}")
    if not release.weights_applied:
        problems.append("its last weights were never confirmed")
    if sum(types[t] for t in ENDS) != 1:
        problems.append(f"{sum(types[t] for t in ENDS)} end events: {[t for t in ENDS if types[t]]}")
    # An abort taken while the release was still pending (before its first tick) ends it unstarted.
    unstarted = release.state == "aborted" and types["started"] == 0 and not types["step_passed"]
    if types["started"] != 1 and not unstarted:
        problems.append(f"{types['started']} 'started' events")
    passed = Counter(int(e.data.get("step") or 0) for e in events if e.type == "step_passed")
    problems += [f"step {step} passed {n} times" for step, n in passed.items() if n > 1]
    if release.state == "succeeded" and sorted(passed) != list(range(2, len(weights) + 1)):
        problems.append(f"promoted, yet the steps passed were {sorted(passed)}")
    if types["weights_drifted"]:
        problems.append(f"{types['weights_drifted']} 'weights_drifted' events (a stale write to the router)")
    recorded = [candidate_weights(e.data.get("weights")) for e in events if e.type == "weights_set"]
    if recorded != runs(recorded):
        problems.append(f"the same weights recorded twice in a row: {recorded}")
    want = weights if release.state == "succeeded" else None
    if want is not None and recorded != want:
        problems.append(f"weights recorded {recorded}, expected the steps' {want}")
    # Aborted: the steps' weights so far, then all traffic back on stable.
    steps_then_stable = bool(recorded) and recorded[-1] == 0 and recorded[:-1] == weights[: len(recorded) - 1]
    if release.state == "aborted" and not steps_then_stable:
        problems.append(f"aborted, yet the weights recorded were {recorded}")
    return problems


def check_router(
    swarm: Swarm, release: Release, writes: list[int], final: dict[str, int] | None, result: SwarmResult
) -> list[str]:
    recorded = [
        candidate_weights(e.data.get("weights")) for e in swarm.ctx.store.events(release.id) if e.type == "weights_set"
    ]
    result.router_repeats += len(writes) - len(runs(writes))
    problems = []
    if runs(writes) != recorded:
        problems.append(f"the router was written {writes}, the release recorded {recorded}")
    if recorded and candidate_weights(final) != recorded[-1]:
        problems.append(f"the router ends at {final}, the release recorded {recorded[-1]}% last")
    return problems


def check_deliveries(swarm: Swarm, release: Release, result: SwarmResult) -> list[str]:
    problems = []
    events = swarm.ctx.store.events(release.id)
    fired = Counter(e.type for e in events if e.type in HOOKED)
    deliveries = swarm.ctx.store.deliveries(release.hooks)
    planned = Counter(d.event for d in deliveries)
    if fired != planned:
        problems.append(f"events fired {dict(fired)}, deliveries recorded {dict(planned)}")
    if len(set(release.hooks)) != len(release.hooks) or len(deliveries) != len(release.hooks):
        problems.append(f"delivery ids not one per event: {release.hooks}")
    seen = swarm.receiver.counts(release.id)
    for d in deliveries:
        if d.state != "delivered":
            problems.append(f"delivery {d.id} {d.state}")
        elif seen[d.id] == 0:
            problems.append(f"delivery {d.id} recorded delivered, never received")
    stray = set(seen) - set(release.hooks)
    if stray:
        problems.append(f"the receiver got deliveries the release does not record: {sorted(stray)}")
    result.deliveries += len(deliveries)
    result.resent += sum(max(0, n - 1) for n in seen.values())
    return problems


def as_dict(result: SwarmResult) -> dict[str, Any]:
    return {k: v for k, v in result.__dict__.items() if k != "problems"} | {"problems": len(result.problems)}
