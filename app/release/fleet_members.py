"""A fleet wave's member: an ordinary release of the fleet's version in one application.

Its id comes from (fleet, wave, application) and it is stored under the version's deploy dedup key,
which the webhook and the watcher share: starting a wave again after a crash finds the releases the
first attempt made, and a release of the version that the application's own announcement started
first is taken as the member rather than raced.
"""

from __future__ import annotations

import time

from app.context import Context
from app.core.fleet import Fleet, event, member_release_id
from app.core.models import Event, Release
from app.release.intake import (
    CLAIM_BACKSTOP_SECONDS,
    IntakeError,
    _created_event,
    _new_release,
    _stable_version,
    claim_service,
)
from app.store import DedupBusy, keys


class MemberProblem(Exception):
    """The member cannot be released (`retry`: not now, e.g. its router is unreachable)."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


class AlreadyStable(Exception):
    """The application already runs the version as stable: nothing to release there."""


def start_member(ctx: Context, fleet: Fleet, wave: int, application: str) -> Release:
    """The member's release, created (and its first tick scheduled) unless it exists already."""
    rid = member_release_id(fleet.id, wave, application)
    existing = ctx.store.get(rid)
    if existing is not None:
        return existing
    app = ctx.config.application(application)
    svc = app.service(fleet.service) if app else None
    if app is None or svc is None:
        raise MemberProblem(f"service {fleet.service!r} of application {application!r} left the configuration")
    version = fleet.version
    known = ctx.store.known_bad_version(app.name, svc.name, version)
    if known is not None and not fleet.forced:
        raise MemberProblem(known.refusal())
    now = time.time()
    try:
        source = _stable_version(ctx, app, svc)
    except IntakeError as exc:
        raise MemberProblem(str(exc), retry=exc.status >= 500) from None
    if source == version:
        raise AlreadyStable(f"{version} is already the stable version there")
    release = _new_release(ctx, app, svc, source, version, None, now, fleet.ci, "fleet", None)
    release = release.model_copy(update={"id": rid, "fleet": fleet.id, "actor": fleet.actor})
    first = _created_event(release, "fleet", None, known, now)
    first.message += f" (fleet {fleet.id}, wave {wave + 1})"
    again = Event(at=now, type="duplicate", message=f"fleet {fleet.id} announced {version} again")
    try:
        stored, created = ctx.store.create(
            release,
            keys.deploy_dedup(app.name, svc.name, version),
            first,
            first_tick_at=now + CLAIM_BACKSTOP_SECONDS,
            duplicate=again,
            force=fleet.forced,
        )
    except DedupBusy:
        raise MemberProblem(
            f"{version} of {svc.name!r} in {app.name!r} is being stored by another request", retry=True
        ) from None
    if created:
        claim_service(ctx, stored)
        ctx.store.schedule_tick(stored.id, stored.seq, now)
    return stored


def started_event(fleet: Fleet, wave: int, releases: dict[str, str], now: float) -> Event:
    listed = ", ".join(f"{app} ({rid})" for app, rid in releases.items()) or "none"
    return event(now, "wave_started", f"wave {wave + 1} started: {listed}", wave=wave + 1, releases=releases)
