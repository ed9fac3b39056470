"""What the deploy receivers (deploy notifications, CircleCI, Argo CD, Argo Rollouts) share: once-only
processing of a sender's event id, starting the release an integration announced, and the answers.

Senders retry on anything but a 2xx, so events Sluice does not act on get a 202 "ignored"
with the reason, and a repeated event a 200 "duplicate". A repeat that arrives while the first
delivery is still being processed gets a 409: the first may yet fail, and then the sender's
retry must not have been acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, request, url_for

from app.context import Context
from app.core.announcements import Announcement, Ignored
from app.release.fleet_intake import fleet_intake
from app.release.fleets import fleet_for
from app.release.intake import Force, IntakeError, start_release
from app.web import limits
from app.web.errors import RETRY_AFTER_SECONDS, ApiError
from app.web.responses import NotStarted, Started, respond

EVENT_TTL = 7 * 24 * 3600
# A claim outlives any request (gunicorn kills a worker after 30 s) but not by much: if the
# process dies mid-way, the claim expires and the sender's next retry is processed.
PROCESSING_TTL = 120
_PROCESSING = "processing"


def claim_event(ctx: Context, source: str, event_key: str) -> str | None:
    """Claim an event for processing (with a short TTL). None: ours to process; otherwise what
    the first delivery of it recorded (a release id, a reason, or "processing"). The receivers' rate
    limit is counted with the claim, in one round trip (RateLimited: nothing claimed)."""
    return ctx.store.claim_event(source, event_key, _PROCESSING, PROCESSING_TTL, count=limits.pending())


def settle_event(ctx: Context, source: str, event_key: str, outcome: str | None) -> None:
    """Record what an event led to; None forgets it (processing failed: the sender's retry is welcome)."""
    ctx.store.settle_event(source, event_key, outcome, EVENT_TTL)


def process_once(ctx: Context, source: str, event_key: str, handle: Callable[[], tuple[Response, str]]) -> Response:
    """Run `handle` for the first delivery of an event; later ones are answered as duplicates.
    `handle` returns the answer and what to remember (a release id or "ignored: ..."); when it
    raises, the event is forgotten so that the sender's retry is processed."""
    seen = claim_event(ctx, source, event_key)
    if seen is not None:
        return duplicate(seen)
    try:
        resp, outcome = handle()
    except Exception:
        settle_event(ctx, source, event_key, None)
        raise
    settle_event(ctx, source, event_key, outcome)
    return resp


def answer(ctx: Context, result: Announcement | Ignored) -> tuple[Response, str]:
    """Start the announced release (or say why not), and what to remember of the event."""
    if isinstance(result, Ignored):
        return ignored(result.reason), f"ignored: {result.reason}"
    return start(ctx, result)


def start(ctx: Context, a: Announcement, force: Force | None = None) -> tuple[Response, str]:
    """Start (or find) the announced release: 202 with its status URL, 200 for a duplicate; 409 for a
    known-bad version unless forced. Returns the answer and the release's id."""
    try:
        # `?mode=shadow` on any receiver's URL judges the release without moving traffic (app/release/shadow.py).
        mode = a.mode or request.args.get("mode")
        fleet = None
        if a.application is None and a.namespace is None and mode is None and fleet_for(ctx, a.service):
            limits.count_first()  # a fleet's service (docs/fleets.md): its start cannot carry the count
            fleet = fleet_intake(ctx, a.service, a.version, a.ci, a.trigger, force)
        intake = fleet or start_release(
            ctx,
            a.service,
            a.version,
            a.application,
            a.namespace,
            a.ci,
            trigger=a.trigger,
            mode=mode,
            force=force,
            count=limits.pending(),
        )
    except IntakeError as exc:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        raise ApiError(exc.status, str(exc), exc.detail, retry) from None
    release = intake.release
    status_url = url_for("api.get_release", release_id=release.id, _external=False)
    body = Started(
        status="started" if intake.created else "duplicate",
        release=release.id,
        state=release.state,
        status_url=status_url,
        duplicate=not intake.created,
        service=release.service,
        source_version=release.source_version,
        target_version=release.target_version,
        policy=release.policy,
        mode=release.mode,
        fleet=intake.fleet,
        fleet_url=f"/api/v1/fleets/{intake.fleet}" if intake.fleet else None,
    )
    return respond(body, 202 if intake.created else 200, {"Location": status_url}), release.id


def ignored(reason: str) -> Response:
    return respond(NotStarted(status="ignored", reason=reason), 202, exclude_none=True)


def duplicate(seen: str) -> Response:
    if seen == _PROCESSING:
        reason = "the first delivery of this event is still being processed"
        return respond(NotStarted(status="processing", reason=reason), 409, {"Retry-After": "10"}, exclude_none=True)
    if seen.startswith("r-"):
        url = url_for("api.get_release", release_id=seen, _external=False)
        body = NotStarted(status="duplicate", duplicate=True, release=seen, status_url=url)
    else:
        body = NotStarted(status="duplicate", duplicate=True, reason=seen)
    return respond(body, exclude_none=True)
