"""Instant rollback after a promotion: all traffic back on the previous stable version, now.

`sluice rollback SERVICE` (API, CLI, dashboard) undoes the service's last promotion while the
previous version still runs next to the new one ("kept warm"). It is a release of its own, so it
is recorded like any other: trigger `rollback`, source the version being taken out, target the
previous one, one step at 100% on the target with no judging wait (that version was stable until
the promotion), and one `rollback` hook event when it is done. The version taken out becomes
known-bad (app/core/known_bad.py), so that a CI retry cannot release it again by accident.

Where the web steers (SLUICE_WEB_STEERS unset: the demo, one process) the request does the work
itself: record the step, set the router's weights, read them back, record the end. In deploy/ the
web may not write the router: it records the step and hands the rest to the workers' urgent queue,
which every worker takes first (app/release/handoff.py), and answers once a worker has finished it
or after a few seconds, whichever comes first. Either way, a crash half-way leaves a running
rollback release whose backstop tick finishes it (workers/tick.py `decide_next`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.services import ServiceConfig
from app.core.decide import decide_rollback
from app.core.known_bad import ROLLBACK_TRIGGER
from app.core.models import Decision, Event, Release
from app.release import handoff
from app.release.engine import apply_weights, commit_decision
from app.release.intake import CLAIM_BACKSTOP_SECONDS, IntakeError, claim_service, resolve_service
from app.store import new_release_id
from app.telemetry.logs import release_context
from integrations.routers.interface import RouterError

# Not a policy name the configuration can hold (names are label-like): a rollback has no policy.
ROLLBACK_POLICY = "(rollback)"


class RollbackError(Exception):
    def __init__(self, status: int, message: str, detail: object = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Plan:
    """What a rollback would do: take `current` out, put all traffic on `previous`."""

    current: str
    previous: str
    promotion: Release  # the succeeded release that made `current` stable
    running: Release | None  # a release in flight, aborted by a forced rollback


def plan_rollback(ctx: Context, app: ApplicationConfig, svc: ServiceConfig, force: bool) -> Plan:
    """The versions a rollback would swap, or a RollbackError saying why there is nothing to roll back to."""
    current = ctx.store.stable_version(app.name, svc.name) or svc.stable_version
    running = None
    active = ctx.store.active_release(app.name, svc.name)
    if active:
        release = ctx.store.get(active)
        if release is not None and not release.terminal:
            running = release
            if not force and release.state != "baking":  # rolling a bake back is what the warm version is for
                raise RollbackError(
                    409,
                    f"release {release.id} ({release.source_version} -> {release.target_version}) is {release.state}; "
                    "abort it first, or send force: true to abort it and roll back",
                    {"release": release.id, "status_url": f"/api/v1/releases/{release.id}"},
                )
    succeeded, _ = ctx.store.list_releases(service=svc.name, application=app.name, state="succeeded", limit=1)
    if running is not None and running.state == "baking":  # its promotion is the one to undo (docs/bake.md)
        succeeded = [running]
    if not current or not succeeded or succeeded[0].target_version != current:
        raise RollbackError(
            409,
            f"nothing to roll back to: no release recorded by Sluice made {current or 'any version'} the stable "
            f"version of {svc.name!r}, so there is no previous version to go back to",
        )
    promotion = succeeded[0]
    previous = promotion.source_version
    known = ctx.store.known_bad_version(app.name, svc.name, previous)
    if known is not None:
        raise RollbackError(
            409,
            f"nothing to roll back to: the previous version {previous} {known.reason}; clear it first "
            f"(sluice known-bad {svc.name} --clear {previous}) to roll back to it anyway",
            {"known_bad": known.model_dump(), "release": known.release_id},
        )
    try:
        health = ctx.router(app).health(svc, previous)
    except RouterError as exc:
        if exc.retryable:
            raise RollbackError(503, f"cannot ask the router whether {previous} is still up: {exc}; retry") from None
        raise RollbackError(409, f"nothing to roll back to: {previous} is gone from the router: {exc}") from None
    if health.healthy is False:
        raise RollbackError(
            409, f"nothing to roll back to: {previous} cannot take traffic ({health.detail}); is it still deployed?"
        )
    return Plan(current=current, previous=previous, promotion=promotion, running=running)


def rollback(
    ctx: Context,
    service: str,
    application: str | None = None,
    actor: str = "api",
    reason: str = "",
    force: bool = False,
) -> Release:
    """Roll `service` back to its previous stable version; returns the rollback release (succeeded,
    or failed with traffic left where it was if the router refused, or still running when a worker
    has yet to finish it: app/release/handoff.py)."""
    try:
        app, svc = resolve_service(ctx, service, application)
    except IntakeError as exc:
        raise RollbackError(exc.status, str(exc), exc.detail) from None
    # One rollback of a service at a time: a double click must not read the same stable version twice.
    with ctx.store.lock(f"rollback:{app.name}:{svc.name}", ttl=60, wait=10) as acquired:
        if not acquired:
            raise RollbackError(409, f"another rollback of {svc.name!r} is in progress; look at its release")
        plan = plan_rollback(ctx, app, svc, force)
        release = _create(ctx, app, svc, plan, actor, reason)
        claim_service(ctx, release)  # aborts the release in flight (only when forced, see plan_rollback)
        steers = handoff.steers_in_request()
        with release_context(release.id):
            release = _run(ctx, release, steers)
    if not steers and release.state == "running" and not release.weights_applied:  # for a worker to finish
        handoff.hand_over(ctx, release)
        release = handoff.wait_for(ctx, release, _finished)
    return release


def _finished(release: Release) -> bool:
    return release.terminal and release.weights_applied


def _create(ctx: Context, app: ApplicationConfig, svc: ServiceConfig, plan: Plan, actor: str, reason: str) -> Release:
    now = time.time()
    why = f"rolled back by {actor}" + (f": {reason}" if reason else "")
    release = Release(
        id=new_release_id(),
        application=app.name,
        namespace=app.namespace,
        service=svc.name,
        source_version=plan.current,
        target_version=plan.previous,
        policy=ROLLBACK_POLICY,
        created_at=now,
        updated_at=now,
        trigger=ROLLBACK_TRIGGER,
        actor=actor,
        reason=why,
        next_tick_at=now,
    )
    event = Event(
        at=now,
        type="created",
        message=f"rollback: {plan.current} -> {plan.previous}, undoing release {plan.promotion.id}; {why}",
        data={
            "trigger": ROLLBACK_TRIGGER,
            "by": actor,
            "reason": reason,
            "undoes": plan.promotion.id,
            "aborts": plan.running.id if plan.running else None,
        },
    )
    # Each rollback is its own release: the key only makes the store's create write it with its
    # first (backstop) tick.
    dedup = f"rollback:{app.name}:{svc.name}:{release.id}"
    created, _ = ctx.store.create(release, dedup, event, first_tick_at=now + CLAIM_BACKSTOP_SECONDS)
    return created


def _run(ctx: Context, release: Release, steers: bool = True) -> Release:
    """Record the one step, make the router show it, record the end: the tick's record → act →
    record, under the release's lock (a backstop tick that fires meanwhile waits, then finds it done).
    Without `steers`, only the step is recorded: a worker's tick acts and records the end."""
    with ctx.store.release_lock(release.id, ttl=30, wait=10) as acquired:
        current = ctx.store.get(release.id) or release
        if not acquired or current.state != "pending":
            return current  # a tick got there first and is finishing it
        start = Decision(
            kind="start",
            step=0,
            weights=current.weights_for(100),
            reason=f"{current.reason}: all traffic back on {current.target_version}",
        )
        running = commit_decision(ctx, current, start, time.time())
        if not steers:
            return running
        running = apply_weights(ctx, running)
        if running.state != "running" or not running.weights_applied:
            # The router refused (the release failed with traffic left on its source) or is retrying
            # (the backstop tick finishes the rollback when it answers).
            return running
        return commit_decision(ctx, running, decide_rollback(running), time.time())
