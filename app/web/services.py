"""Per-service actions: roll back the last promotion, and the service's known-bad versions.

  POST   /api/v1/services/<service>/rollback                 (API token)
  GET    /api/v1/services/<service>/known-bad                (read token)
  DELETE /api/v1/services/<service>/known-bad/<version>      (API token)

A service name is unique in most configurations; when several applications have one, name it
in `application` (query string, or the rollback's body).
"""

from __future__ import annotations

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.context import get_context
from app.core.known_bad import KnownBad
from app.core.names import check_label_value
from app.release.intake import IntakeError, resolve_service
from app.release.rollback import RollbackError, rollback
from app.release.views import ReleaseDetail, release_detail
from app.web.audit import record
from app.web.auth import require_admin, require_token
from app.web.bodies import parse_json, raw_body
from app.web.errors import RETRY_AFTER_SECONDS, ApiError, validation_detail
from app.web.openapi import doc, error
from app.web.responses import respond

bp = Blueprint("services", __name__, url_prefix="/api/v1/services")
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500, pattern=_PRINTABLE, description="Why (recorded on the release).")
    by: str | None = Field(
        None, max_length=128, pattern=_PRINTABLE, description='Who rolls back (recorded; default "api").'
    )
    force: bool = Field(False, description="Abort a release of the service that is in flight, and roll back.")
    application: str | None = Field(None, max_length=63, description="The service's application, if several.")


class KnownBadList(BaseModel):
    """A service's known-bad versions, newest first: a new announcement of one is refused (409)."""

    application: str
    service: str
    known_bad: list[KnownBad]


class KnownBadCleared(BaseModel):
    """The entry that was cleared: the version can be released again."""

    application: str
    service: str
    cleared: KnownBad


def _service(service: str, application: str | None) -> tuple[str, str]:
    """(application, service) as configured, or the intake's 400/404 answer."""
    try:
        check_label_value(service, "service")
        app, svc = resolve_service(get_context(), service, application)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except IntakeError as exc:
        raise ApiError(exc.status, str(exc), exc.detail) from None
    return app.name, svc.name


def _rollback_body() -> RollbackRequest:
    raw = raw_body()
    if not raw.strip():
        return RollbackRequest()
    if request.mimetype != "application/json":
        raise ApiError(415, 'the body must be JSON (Content-Type: application/json), e.g. {"reason": "..."}')
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object, e.g. {"reason": "...", "by": "alice"}')
    try:
        return RollbackRequest.model_validate(body, strict=True)
    except ValidationError as exc:
        raise ApiError(400, "the body has invalid fields", validation_detail(exc)) from None


@bp.post("/<service>/rollback")
@doc(
    "Roll a service back: all traffic on the previous stable version, now, as a release of its own",
    "services",
    {
        201: (ReleaseDetail, "The rollback release: succeeded, or failed with traffic left where it was."),
        202: (
            ReleaseDetail,
            "The rollback is recorded and the worker applies it (where the web does not steer the router "
            "itself); follow the release at `Location`.",
        ),
        400: error("The body has invalid fields."),
        401: error("Missing or wrong bearer token."),
        404: error("No such service."),
        409: error(
            "Nothing to roll back to (no previous version recorded, it is known-bad, or its servers are gone), "
            "or a release is running (send `force: true`)."
        ),
        503: error("The router could not tell whether the previous version is up: retry."),
    },
    body=RollbackRequest,
    body_required=False,
    security=["bearer"],
)
def post_rollback(service: str):
    who = require_token()
    body = _rollback_body()
    ctx = get_context()
    app, svc = _service(service, body.application)
    try:
        release = rollback(ctx, svc, app, actor=who.actor(body.by), reason=body.reason or "", force=body.force)
    except RollbackError as exc:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
        raise ApiError(exc.status, str(exc), exc.detail, headers) from None
    record(who, "rollback", release.id, f"{app}/{svc}" + (f": {body.reason}" if body.reason else ""), body.by)
    url = f"/api/v1/releases/{release.id}"
    done = release.terminal and release.weights_applied  # else a worker finishes it (app/release/handoff.py)
    return respond(release_detail(ctx, release), 201 if done else 202, {"Location": url})


@bp.get("/<service>/known-bad")
@doc(
    "A service's known-bad versions (failed or rolled back): announcing one again is refused with 409",
    "services",
    {200: (KnownBadList, "The versions, newest first."), 404: error("No such service.")},
)
def list_known_bad(service: str):
    app, svc = _service(service, request.args.get("application"))
    return respond(KnownBadList(application=app, service=svc, known_bad=get_context().store.known_bad(app, svc)))


@bp.delete("/<service>/known-bad/<version>")
@doc(
    "Clear a known-bad version: the next announcement of it starts a release again",
    "services",
    {
        200: (KnownBadCleared, "The entry that was cleared."),
        401: error("Missing or wrong bearer token."),
        404: error("No such service, or the version is not known-bad."),
    },
    security=["bearer"],
)
def clear_known_bad(service: str, version: str):
    who = require_admin()
    app, svc = _service(service, request.args.get("application"))
    try:
        check_label_value(version, "version")
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    cleared = get_context().store.clear_known_bad(app, svc, version)
    if cleared is None:
        raise ApiError(
            404, f"{version} is not a known-bad version of {svc!r}; list them with GET /api/v1/services/{svc}/known-bad"
        )
    record(who, "known-bad-clear", f"{app}/{svc}", version)
    return respond(KnownBadCleared(application=app, service=svc, cleared=cleared))
