"""Fleets in the shell: start one from an announcement, and advance it (docs/fleets.md).

`advance` is the fleet's tick: under the fleet's lock it reads the current wave's member releases,
and records what follows (the next wave, the end, a failure) before it acts on it, each record fenced
by the fleet's seq. It is run by the scheduler (a `fleet:<id>` due member, every LOOK_SECONDS as a
backstop) and brought forward whenever a member release finishes (app/release/fleet_nudge.py). A crash at
any line is repaired by the next look: members have deterministic ids (app/release/fleet_members.py),
and the effects of an end are redone until they are recorded (app/release/fleet_effects.py).
"""

from __future__ import annotations

import logging
import time

from app.context import Context
from app.core.config.fleets import FleetConfig, resolve_waves
from app.core.fleet import Fleet, FleetWave, event, failure_state, judge_wave
from app.core.models import CIContext, Release
from app.release import fleet_effects
from app.release.fleet_members import AlreadyStable, MemberProblem, start_member, started_event
from app.store.fleets import FleetChanged, new_fleet_id

log = logging.getLogger("sluice.fleets")
LOOK_SECONDS = 5.0  # the backstop look while a fleet runs (a member's end brings it forward)
RETRY_SECONDS = 2.0


class FleetError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def fleet_for(ctx: Context, service: str) -> FleetConfig | None:
    return next((f for f in getattr(ctx.config, "fleets", []) if f.service == service), None)


def start_fleet(
    ctx: Context,
    config: FleetConfig,
    version: str,
    ci: CIContext | None,
    trigger: str,
    actor: str | None = None,
    forced: bool = False,
) -> tuple[Fleet, bool]:
    """Store the fleet (or find the one this version's announcement started) and start its first wave
    now, so that the announcement's answer can name a release. Returns (fleet, created)."""
    holders = [a.name for a in ctx.config.applications if a.service(config.service)]
    try:
        waves = resolve_waves(config, holders)
    except ValueError as exc:
        raise FleetError(409, str(exc)) from None
    now = time.time()
    fleet = Fleet(
        id=new_fleet_id(),
        name=config.name,
        service=config.service,
        version=version,
        on_failure=config.on_failure,
        approve_before=list(config.approve_before),
        waves=[FleetWave(applications=w) for w in waves],
        created_at=now,
        updated_at=now,
        ci=ci or CIContext(),
        trigger=trigger,
        actor=actor,
        forced=forced,
    )
    plan = " then ".join("[" + ", ".join(w) + "]" for w in waves)
    first = event(now, "created", f"{trigger}: fleet {config.name} releases {version} in {len(waves)} waves: {plan}")
    fleet, created = ctx.store.fleets.create(fleet, first, force=forced)
    if created:
        advance(ctx, fleet.id)
    return ctx.store.fleets.get(fleet.id) or fleet, created


def first_release(ctx: Context, fleet: Fleet) -> Release | None:
    """The release the announcement answers with: the first member the fleet started."""
    ids = fleet.member_ids()
    return ctx.store.get(ids[0]) if ids else None


def advance(ctx: Context, fleet_id: str) -> str:
    """One look at the fleet: returns what it did (for the job's result and the logs)."""
    with ctx.store.lock(f"fleet:{fleet_id}", ttl=60, wait=0) as acquired:
        if not acquired:
            ctx.store.fleets.look_soon(fleet_id, time.time() + RETRY_SECONDS)
            return "busy"
        fleet = ctx.store.fleets.get(fleet_id)
        if fleet is None:
            ctx.store.fleets.unschedule(fleet_id)
            return "gone"
        try:
            return _advance(ctx, fleet)
        except FleetChanged as exc:
            return f"changed: {exc}"


def _advance(ctx: Context, fleet: Fleet) -> str:
    for _ in range(len(fleet.waves) + 2):  # a wave that is already done lets the next start in the same look
        if fleet.state == "running":
            fleet, moved = _running(ctx, fleet)
            if not moved:
                return f"wave {fleet.wave + 1} running"
        elif fleet.state == "rolling_back":
            fleet = _roll_back(ctx, fleet)
        else:
            return _finish(ctx, fleet)
    return f"{fleet.state} (wave {fleet.wave + 1})"


def _running(ctx: Context, fleet: Fleet) -> tuple[Fleet, bool]:
    """The current wave: start it, or judge it. Returns the fleet and whether it moved on."""
    wave = fleet.waves[fleet.wave]
    if fleet.awaiting_approval() is not None:  # approve_fleet records the approval and looks again
        ctx.store.fleets.look_soon(fleet.id, time.time() + LOOK_SECONDS)
        return fleet, False
    if wave.state == "pending":
        fleet = _start_wave(ctx, fleet)
        wave = fleet.waves[fleet.wave]
    members = {app: ctx.store.get(rid) for app, rid in wave.releases.items()}
    verdict = judge_wave(wave, members)
    now = time.time()
    if verdict.state == "running":
        ctx.store.fleets.look_soon(fleet.id, now + LOOK_SECONDS)
        return fleet, False
    new = fleet.model_copy(deep=True)
    done = new.waves[new.wave]
    done.state, done.finished_at = verdict.state, now
    if verdict.state == "succeeded":
        last = new.wave == len(new.waves) - 1
        message = f"wave {new.wave + 1} succeeded: {', '.join(done.applications)}"
        if last:
            new.state, new.reason, new.finished_at = "succeeded", f"every wave released {new.version}", now
        else:
            new.wave += 1
        ended = [event(now, "wave_succeeded", message, wave=fleet.wave + 1)]
        if new.awaiting_approval() is not None:
            ended.append(event(now, "approval_needed", f"wave {new.wave + 1} waits for approval", wave=new.wave + 1))
        return _record(ctx, fleet, new, ended, now), True
    new.state = failure_state(fleet, members)
    new.reason = f"wave {new.wave + 1} failed: {verdict.reason}"
    recorded = _record(ctx, fleet, new, [event(now, "wave_failed", new.reason, wave=new.wave + 1)], now)
    fleet_effects.abort_in_flight(ctx, recorded, new.reason)  # recorded first: a crash here is redone below
    return recorded, True


def _start_wave(ctx: Context, fleet: Fleet) -> Fleet:
    """Record the wave as started, then create its members (each idempotent), then record their ids."""
    now = time.time()
    new = fleet.model_copy(deep=True)
    wave = new.waves[new.wave]
    wave.state, wave.started_at = "running", now
    for app in wave.applications:
        try:
            release = start_member(ctx, new, new.wave, app)
        except AlreadyStable as exc:
            wave.skipped[app] = str(exc)
            continue
        except MemberProblem as exc:
            if exc.retry:
                raise FleetChanged(f"{app}: {exc}; retrying") from None  # nothing recorded: the next look retries
            wave.problems[app] = str(exc)
            continue
        wave.releases[app] = release.id
    return ctx.store.fleets.commit(
        new, fleet.seq, [started_event(new, new.wave, wave.releases, now)], now + LOOK_SECONDS
    )


def _roll_back(ctx: Context, fleet: Fleet) -> Fleet:
    fleet_effects.abort_in_flight(ctx, fleet, fleet.reason or "failed")  # redone after a crash: idempotent
    rollbacks, events = fleet_effects.roll_back_released(ctx, fleet)
    now = time.time()
    new = fleet.model_copy(deep=True, update={"rollbacks": rollbacks, "state": "rolled_back", "finished_at": now})
    apps = ", ".join(rollbacks) or "none"
    events.append(event(now, "rolled_back", f"previous version back in {apps}", applications=list(rollbacks)))
    return _record(ctx, fleet, new, events, now)


def _record(ctx: Context, before: Fleet, new: Fleet, events: list, now: float) -> Fleet:
    """Commit a change of the fleet; at its end, with the fleet's own CI deliveries and no next look."""
    deliveries = []
    if new.terminal:
        new.finished_at = new.finished_at or now
        deliveries = fleet_effects.fleet_deliveries(ctx, new, now)
        new.hooks = new.hooks + [d.id for d in deliveries]
        events = [*events, event(now, new.state, f"fleet {new.state}: {new.reason or ''}".rstrip(": "))]
    # A finished fleet is looked at once more (`_finish`): whatever a crash left undone after this record
    # (an abort of its releases in flight) is done then, and the look unschedules itself.
    next_look = now + LOOK_SECONDS if new.terminal else now
    log.info("fleet %s: %s", new.id, new.state, extra={"fleet": new.id, "state": new.state})
    return ctx.store.fleets.commit(new, before.seq, events, next_look, deliveries)


def _finish(ctx: Context, fleet: Fleet) -> str:
    """A finished fleet: abort any member still in flight (a crash after recording the end)."""
    fleet_effects.abort_in_flight(ctx, fleet, fleet.reason or fleet.state)
    ctx.store.fleets.unschedule(fleet.id)
    return f"{fleet.state}: {fleet.reason or ''}"


def abort_fleet(ctx: Context, fleet_id: str, actor: str, reason: str = "") -> Fleet:
    """Stop the fleet: its members in flight are aborted, the applications already done keep the version."""
    with ctx.store.lock(f"fleet:{fleet_id}", ttl=60, wait=10) as acquired:
        if not acquired:
            raise FleetError(409, "the fleet is busy (a look at its waves is running); try again in a few seconds")
        fleet = ctx.store.fleets.get(fleet_id)
        if fleet is None:
            raise FleetError(404, f"no fleet {fleet_id!r}; list fleets with GET /api/v1/fleets")
        if fleet.terminal:
            raise FleetError(409, f"cannot abort a fleet that is {fleet.state}")
        now = time.time()
        why = f"aborted by {actor}" + (f": {reason}" if reason else "")
        new = fleet.model_copy(deep=True, update={"state": "aborted", "reason": why})
        try:
            recorded = _record(ctx, fleet, new, [], now)
        except FleetChanged:
            raise FleetError(409, "the fleet changed while it was aborted; try again") from None
        fleet_effects.abort_in_flight(ctx, recorded, why)
        return recorded


def approve_fleet(ctx: Context, fleet_id: str, actor: str) -> Fleet:
    """A person approves the start of the wave that waits for it (`approve_before`)."""
    with ctx.store.lock(f"fleet:{fleet_id}", ttl=60, wait=10) as acquired:
        if not acquired:
            raise FleetError(409, "the fleet is busy (a look at its waves is running); try again in a few seconds")
        fleet = ctx.store.fleets.get(fleet_id)
        if fleet is None:
            raise FleetError(404, f"no fleet {fleet_id!r}; list fleets with GET /api/v1/fleets")
        number = fleet.awaiting_approval()
        if number is None:
            raise FleetError(
                409, f"fleet {fleet_id} waits for no approval (it is {fleet.state}, at wave {fleet.wave + 1})"
            )
        now = time.time()
        new = fleet.model_copy(deep=True)
        new.approvals[str(number)] = actor
        approved = event(now, "approved", f"wave {number} approved by {actor}", wave=number, by=actor)
        try:
            return ctx.store.fleets.commit(new, fleet.seq, [approved], now)
        except FleetChanged:
            raise FleetError(409, "the fleet changed while it was approved; try again") from None
