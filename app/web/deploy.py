"""`POST /hooks/deploy`: a deploy notification starts (or finds) a release."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field

from app.context import get_context
from app.core.announcements import Announcement
from app.core.models import CIContext
from app.release.intake import Force
from app.web.audit import record
from app.web.auth import require_token_or_signature, roles_for
from app.web.bodies import json_body, raw_body
from app.web.errors import ApiError
from app.web.openapi import doc, error
from app.web.receivers import start
from app.web.responses import Started

bp = Blueprint("deploy", __name__)


class DeployNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=63, description="The service (the `app` label of its Deployments).")
    version: str = Field(max_length=63, description="The version CI just deployed next to the stable one.")
    application: str | None = Field(None, max_length=63)
    namespace: str | None = Field(None, max_length=63)
    ci: CIContext | None = None
    mode: Literal["live", "shadow"] | None = Field(
        None,
        description="shadow: judge the release without moving traffic (also `?mode=shadow`); "
        "default: as the service and policy are configured.",
    )
    force: bool = Field(
        False,
        description="Release the version although it is known-bad (its last release failed or was rolled back).",
    )
    by: str | None = Field(
        None,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who forces it, with a shared token (recorded as `api:<by>`); a person's token records their name.",
    )
    reason: str | None = Field(
        None, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$", description="Why (recorded on the release)."
    )


class DeployQuery(BaseModel):
    mode: Literal["live", "shadow"] | None = Field(
        None, description="shadow: judge the release without moving traffic (docs/configuration.md: Shadow mode)."
    )


@bp.post("/hooks/deploy")
@doc(
    "A deploy notification: start (or find) the release of a service's new version",
    "receivers",
    {
        202: (Started, "A release was started; `status_url` follows it."),
        200: (Started, "A duplicate notification: the release it already started."),
        400: error("The body has invalid fields (each named in `detail`), or asks a mode the URL contradicts."),
        401: error("Missing or wrong bearer token or signature, or a replayed or stale signed notification."),
        403: error("`force` was sent with a token (or signature) that does not steer: operator needed."),
        404: error("No such service in the configuration."),
        409: error(
            "The version is already stable; or it is known-bad (the error says why and links its release; "
            "send `force: true` to release it again); or `mode: live` was asked of a service configured as shadow."
        ),
        415: error("The body is not JSON."),
        503: error("Redis is unreachable, or another request is storing this version: retry (`Retry-After`)."),
    },
    body=DeployNotification,
    query=DeployQuery,
    security=["bearer", "deploySignature"],
)
def deploy():
    who = require_token_or_signature(raw_body())
    note = json_body(DeployNotification, strict=True)
    if note.force and not who.may("steer"):
        raise ApiError(
            403,
            f"`force` (releasing a known-bad version again) needs the {roles_for('steer')} role; this sender "
            f"({who.name}) has the {who.role} role: send it with an operator's token",
        )
    mode = note.mode or request.args.get("mode")
    if note.mode and request.args.get("mode") not in (None, note.mode):
        raise ApiError(400, f"the body says mode {note.mode!r} and the URL mode {request.args['mode']!r}; give one")
    announcement = Announcement(
        service=note.service,
        version=note.version,
        application=note.application,
        namespace=note.namespace,
        ci=note.ci or CIContext(),
        trigger=note.ci.provider if note.ci and note.ci.provider else "webhook",
        mode=mode,
    )
    force = Force(by=who.actor(note.by), reason=note.reason or "") if note.force else None
    resp, release_id = start(get_context(), announcement, force)
    if force is not None:
        record(
            who,
            "force",
            release_id,
            f"{note.service} {note.version}" + (f": {note.reason}" if note.reason else ""),
            note.by,
        )
    return resp
