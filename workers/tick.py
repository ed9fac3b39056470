"""The release tick: load → observe → decide → record → act → schedule, one named step each.

A tick carries the `seq` it was scheduled for. Under the per-release lease (renewed while the
tick runs), a tick whose seq is no longer the release's (a duplicate, or a late one) does nothing.
The crash order is the engine's (app/release/engine.py): record commits the decision and the next tick
in one transaction, then act changes the router and confirms; a crash in between is repaired by
the next tick's load, which finishes the act before anything is evaluated again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum

from app.context import Context, UnknownService, get_context
from app.core.decide import decide, decide_rollback, fail_back
from app.core.known_bad import ROLLBACK_TRIGGER
from app.core.models import Decision, Event, Observations, Release
from app.release import shadow
from app.release.drift import restore_drifted_weights
from app.release.engine import apply_weights, commit_decision
from app.release.gate_checks import observe_gates
from app.release.intake import claim_service
from app.release.judge_memo import JUDGE_MEMO
from app.release.observe import forget_batch, observe, prime_batch
from app.store import LeaseLost, StoreUnavailable
from app.store.lease_group import GroupLease, LeaseGroup
from app.store.locks import Lease
from app.telemetry import metrics
from app.telemetry.logs import release_context

log = logging.getLogger("sluice.tick")
# The per-release lease: renewed by a heartbeat while the tick runs, so a worker killed inside a
# tick holds its release up for at most this long (not a fixed 60 s lock).
LEASE_TTL = 10.0
# A tick that finds the release held retries this soon (the scheduler's claim would be LEASE_TTL).
BUSY_RETRY_SECONDS = 1.0
# All of a batch's Prometheus queries together (integrations/prometheus/client.py `start_budget`):
# a frozen or slow Prometheus delays a batch of up to 16 ticks by this much at most; the queries
# not asked are "no data" for their ticks, which never promotes a step.
BATCH_QUERY_BUDGET = 10.0
# A tick mostly waits: on Prometheus (two to four queries), the router and Redis. A batch's ticks
# run on this many threads, so one worker keeps up with dozens of releases at a 2 s interval
# instead of queueing them behind each other's round trips (benchmarks/: tick lag).
TICK_THREADS = max(1, int(os.environ.get("SLUICE_TICK_THREADS", "8") or 8))
# ...unless the batch's Prometheus answers are primed: its ticks then wait only on Redis and the
# router, and mostly compute, which threads do one at a time (the GIL) and at a cost: 8 threads
# took ~13% more CPU a tick than 1 (benchmarks/profile_tick.py --without primed_threads). Two keep a
# tick that waits on a slow router (a Kubernetes API) from holding up the whole batch.
PRIMED_TICK_THREADS = max(1, int(os.environ.get("SLUICE_PRIMED_TICK_THREADS", "2") or 2))


class TickKind(StrEnum):
    """What a tick did; also the `result` label of the `sluice_ticks_total` metric."""

    DECIDED = "decided"  # evaluated (or retired) the release and recorded a decision
    IDLE = "idle"  # nothing to evaluate: the release is finished or paused
    WAITING = "waiting"  # the router has not confirmed the last decision's weights yet
    STALE = "stale"  # the release moved on since this tick was scheduled
    BUSY = "busy"  # another tick or a steering action holds the release
    LOST = "lost"  # the tick's lease was lost (renewal failed) before it could record or act
    GONE = "gone"  # no such release


@dataclass(frozen=True)
class TickOutcome:
    kind: TickKind
    message: str  # for the logs and the RQ job's result, e.g. "hold: step in progress: 20s left"
    next_tick_at: float | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class TickBatch:
    """What a batch holds for its ticks: their releases' leases (taken together) and the releases
    as read under them, each lent to the first tick of its release only (a second tick of the same
    release reads it again: the first may have moved it on)."""

    leases: LeaseGroup
    releases: dict[str, Release]

    def lease(self, release_id: str) -> AbstractContextManager[Lease | GroupLease | None]:
        return self.leases.lease(release_id)

    def release(self, release_id: str) -> Release | None:
        return self.releases.pop(release_id, None)


def run_tick(release_id: str, seq: int, due_at: float | None = None, batch: TickBatch | None = None) -> str:
    """RQ entry point. Returns what happened, for the job's result and the logs. `due_at`: when the
    tick was due, if the caller knows (a batch read its releases already); else it is read."""
    ctx = get_context()
    with release_context(release_id), metrics.timed_tick(ctx.store, release_id, seq, due_at):
        outcome = tick(ctx, release_id, seq, batch)
    metrics.count_tick(ctx.store, outcome.kind)
    return str(outcome)


def tick(ctx: Context, release_id: str, seq: int, batch: TickBatch | None = None) -> TickOutcome:
    try:
        return _tick(ctx, release_id, seq, batch)
    except LeaseLost as exc:  # the store refused a commit: another holder owns the release now
        return TickOutcome(TickKind.LOST, f"lost: {exc}")


def _tick(ctx: Context, release_id: str, seq: int, batch: TickBatch | None = None) -> TickOutcome:
    held = batch.lease(release_id) if batch else ctx.store.release_lease(release_id, ttl=LEASE_TTL)
    with held as lease:
        if lease is None:
            # Try again soon rather than a scheduler lease later: the holder may be a dead worker
            # whose lease runs out within LEASE_TTL.
            ctx.store.retry_tick(release_id, seq, time.time() + BUSY_RETRY_SECONDS)
            return TickOutcome(TickKind.BUSY, "busy: another tick holds this release")
        loaded = load(ctx, release_id, seq, batch.release(release_id) if batch else None)
        if isinstance(loaded, TickOutcome):
            return loaded
        now = time.time()
        if loaded.shadow and loaded.state == "running":  # judge the traffic the candidate really has
            loaded = shadow.read_weights(ctx, loaded)
        observations = observe(ctx, loaded, now)
        decision = decide_next(ctx, loaded, observations, now)
        if not lease.held():  # observing outlasted the lease: another tick may own the release now
            return TickOutcome(TickKind.LOST, "lost: the release's lease expired while observing")
        release = record(ctx, loaded, decision, now)
        if not lease.held():  # recorded, not applied: the next tick's load finishes the act
            return TickOutcome(TickKind.LOST, "lost: the release's lease expired after recording")
        release = act(ctx, release)
        return schedule(release, decision)


# --- load -------------------------------------------------------------------------------------------


def load(ctx: Context, release_id: str, seq: int, read: Release | None = None) -> Release | TickOutcome:
    """The release, when this tick is still its own and there is something to evaluate; otherwise
    what the tick did instead. Finishes what an earlier tick left undone first: claiming the
    service (the intake died before it could) and applying the last decision's weights. `read`:
    the release as its batch read it under this tick's lease (else it is read now)."""
    release = read if read is not None else ctx.store.get(release_id)
    if release is None:
        ctx.store.unschedule_tick(release_id, seq)
        return TickOutcome(TickKind.GONE, "gone")
    if release.seq != seq:
        return TickOutcome(TickKind.STALE, f"stale: release is at seq {release.seq}, this tick was for {seq}")
    # A shadow release moves no traffic, so it owns no service and is never superseded (app/release/shadow.py).
    owner = release.id if release.shadow else ctx.store.active_release(release.application, release.service)
    if release.state == "pending" and owner != release.id:
        owner = claim_service(ctx, release)  # the intake died before it could
    if not release.terminal and owner != release.id:
        return retire(ctx, release, owner)
    release = act(ctx, release)  # repair a decision whose effect was not confirmed
    if release.terminal or release.state == "paused":
        if release.weights_applied:
            ctx.store.unschedule_tick(release.id, release.seq)
        return TickOutcome(TickKind.IDLE, f"{release.state}: nothing to evaluate")
    release = restore_drifted_weights(ctx, release)  # e.g. an HAProxy reload reset them
    if not release.weights_applied:
        return TickOutcome(TickKind.WAITING, "router not yet updated; retrying")
    return release


def retire(ctx: Context, release: Release, owner: str | None) -> TickOutcome:
    """This release no longer owns its service's traffic (a newer release took the service, and the
    supersede could not abort this one because a tick held its lock). Abort it without touching the
    router, which the newer release steers (or steered, and then put on its own final weights)."""
    by = f"release {owner}" if owner else "a newer release"
    now = time.time()
    retired = record(ctx, release, fail_back(release, f"superseded by {by}", kind="abort"), now)
    if not retired.weights_applied:
        ctx.store.commit(
            retired.model_copy(update={"weights_applied": True}),
            events=[Event(at=now, type="weights_skipped", message=f"{by} now routes this service")],
            previous_seq=retired.seq,
        )
    return TickOutcome(TickKind.DECIDED, f"abort: superseded by {by}")


# --- decide, record, act, schedule --------------------------------------------------------------------


def decide_next(ctx: Context, release: Release, observations: Observations, now: float) -> Decision:
    """The pure `decide` with the release's policy; a release whose service or policy left the
    configuration fails back to stable. A rollback has no policy: its one step is done once its
    weights are confirmed (the tick only finishes a rollback its request could not)."""
    if release.trigger == ROLLBACK_TRIGGER:
        return decide_rollback(release)
    try:
        _, _, policy = ctx.locate(release)
    except UnknownService as exc:
        return fail_back(release, f"configuration: {exc}")
    decision = decide(release, policy, observations, now, JUDGE_MEMO)  # the same statistics: not recomputed
    if decision.gates_needed is not None:  # at a gate point: ask its gates, then decide on their answers
        observations.gates = observe_gates(ctx, release, policy, decision.gates_needed, now)
        decision = decide(release, policy, observations, now, JUDGE_MEMO)
    return decision


def record(ctx: Context, release: Release, decision: Decision, now: float) -> Release:
    """Commit the decision atomically: state, evaluations, events, hook deliveries and the next
    tick (app.release.engine.next_tick_at). The router is not touched yet."""
    return commit_decision(ctx, release, decision, now)


def act(ctx: Context, release: Release) -> Release:
    """Make the router show the release's desired weights and confirm it (no-op when confirmed)."""
    return apply_weights(ctx, release)


def schedule(release: Release, decision: Decision) -> TickOutcome:
    """The next tick: committed by `record` with the decision (so that a crash after the commit
    still leaves one), at the time app.release.engine.next_tick_at chose; the outcome reports it."""
    return TickOutcome(TickKind.DECIDED, f"{decision.kind}: {decision.reason}", release.next_tick_at)


# --- batches ----------------------------------------------------------------------------------------


def run_ticks(batch: list[tuple[str, int]]) -> list[str]:
    """RQ entry point for several due ticks in one job. A job costs RQ dozens of Redis commands
    (registries, heartbeats, status); a tick costs Sluice about fifteen. Batching is what lets
    one worker hold thousands of releases. One tick failing does not stop the others: each is
    retried through the `due` schedule like any crashed tick."""
    ctx = get_context()
    # The scheduler's claim on the batch runs out LEASE_TTL after it was enqueued: renewed when the
    # batch starts (the job may have waited in the queue), and by each tick of a batch that has run
    # for LEASE_TTL / 3 already, so that a slow batch is not enqueued again while it runs.
    ctx.store.extend_tick_claims(batch, time.time() + LEASE_TTL)
    started = time.monotonic()
    with batch_leases(ctx, batch) as held:
        releases = _read_batch(ctx, batch)  # after the leases: what the ticks may start from
        if held is not None:
            held.releases = {r.id: r for r in releases if r.id in held.leases.taken}
        return _run_batch(ctx, batch, releases, held, started)


def _run_batch(
    ctx: Context, batch: list[tuple[str, int]], releases: list[Release], held: TickBatch | None, started: float
) -> list[str]:
    wanted = {(release_id, seq) for release_id, seq in batch}
    due = {r.id: r.next_tick_at for r in releases if (r.id, r.seq) in wanted}

    def one(item: tuple[str, int]) -> str:
        if time.monotonic() - started > LEASE_TTL / 3:
            ctx.store.extend_tick_claims([item], time.time() + LEASE_TTL)
        return _isolated_tick(item[0], item[1], due.get(item[0]), held)

    # The batch's metrics (three writes a tick) go to Redis in one round trip at its end.
    with primed_queries(ctx, releases) as primed, _batched_metrics(ctx):
        threads = min(PRIMED_TICK_THREADS if primed else TICK_THREADS, len(batch))
        if threads == 1:
            return [one(item) for item in batch]
        # Each release has its own lease, so ticks of different releases never share state
        # beyond the context's clients (Redis pool, HTTP sessions), which are thread-safe.
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tick") as pool:
            return list(pool.map(one, batch))


def _read_batch(ctx: Context, batch: list[tuple[str, int]]) -> list[Release]:
    """The batch's releases as they are now, in one round trip (what its queries are primed for);
    none if Redis cannot say: the ticks then read their own."""
    try:
        return ctx.store.get_many([release_id for release_id, _ in batch])
    except Exception:  # noqa: BLE001 - an optimisation: each tick loads its release anyway
        log.exception("could not read the batch's releases; ticks will read them one by one")
        return []


@contextmanager
def _batched_metrics(ctx: Context) -> Iterator[None]:
    try:
        with ctx.store.metrics.batched():
            yield
    except StoreUnavailable:  # raised by the write at the end only: the ticks' results stand
        log.warning("could not record the batch's tick metrics", exc_info=True)


@contextmanager
def batch_leases(ctx: Context, batch: list[tuple[str, int]]) -> Iterator[TickBatch | None]:
    """The batch's leases in one round trip, renewed by one heartbeat and given back together at its
    end (app/store/lease_group.py); None if Redis would not take them: each tick then takes its own."""
    try:
        group = ctx.store.release_leases([release_id for release_id, _ in batch], ttl=LEASE_TTL)
    except Exception:  # noqa: BLE001 - an optimisation: each tick can take its lease itself
        log.exception("could not take the batch's leases; ticks will take them one by one")
        yield None
        return
    try:
        yield TickBatch(group, {})
    finally:
        try:
            group.close()
        except Exception:  # noqa: BLE001 - the leases run out within LEASE_TTL by themselves
            log.warning("could not give the batch's leases back", exc_info=True)


def _isolated_tick(release_id: str, seq: int, due_at: float | None = None, batch: TickBatch | None = None) -> str:
    """One tick of a batch: its failure does not stop the others (it is retried through `due`)."""
    try:
        return run_tick(release_id, seq, due_at, batch)
    except Exception:  # noqa: BLE001 - isolate releases from each other
        log.exception("tick %s #%s failed; it will be retried", release_id, seq, extra={"release_id": release_id})
        return "error"


@contextmanager
def primed_queries(ctx: Context, releases: list[Release]) -> Iterator[int]:
    """For the batch: one grouped Prometheus query per check, not one per release, and one
    request for the judge's counts. The answers prime ctx.prometheus and the provider, and are
    dropped afterwards so that no later tick reads them. The batch's queries share one time
    budget (BATCH_QUERY_BUDGET). Yields how many answers were primed."""
    ctx.prometheus.start_budget(BATCH_QUERY_BUDGET)
    primed = 0
    try:
        primed = prime_batch(ctx, releases, time.time())
    except Exception:  # noqa: BLE001 - an optimisation: without it the ticks ask one by one
        log.exception("could not prepare the batch's Prometheus queries; ticks will ask one by one")
    try:
        yield primed
    finally:
        forget_batch(ctx)
        ctx.prometheus.end_budget()
