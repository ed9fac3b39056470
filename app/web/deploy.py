"""`POST /hooks/deploy`: a deploy notification starts (or finds) a release."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from app.context import get_context
from app.intake import IntakeError, start_release
from app.models import CIContext
from app.web.auth import require_token_or_signature
from app.web.bodies import json_body
from app.web.errors import ApiError

bp = Blueprint("deploy", __name__)


class DeployNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=63, description="The service (the `app` label of its Deployments).")
    version: str = Field(max_length=63, description="The version CI just deployed next to the stable one.")
    application: str | None = Field(None, max_length=63)
    namespace: str | None = Field(None, max_length=63)
    ci: CIContext | None = None


@bp.post("/hooks/deploy")
def deploy():
    require_token_or_signature(request.get_data(cache=True))
    note = json_body(DeployNotification)
    try:
        intake = start_release(
            get_context(),
            note.service,
            note.version,
            note.application,
            note.namespace,
            note.ci,
            trigger=(note.ci.provider if note.ci and note.ci.provider else "webhook"),
        )
    except IntakeError as exc:
        raise ApiError(exc.status, str(exc), exc.detail) from None
    release = intake.release
    status_url = url_for("api.get_release", release_id=release.id, _external=False)
    body = {
        "release": release.id,
        "state": release.state,
        "status_url": status_url,
        "duplicate": not intake.created,
        "source_version": release.source_version,
        "target_version": release.target_version,
        "policy": release.policy,
    }
    resp = jsonify(body)
    resp.status_code = 202 if intake.created else 200
    resp.headers["Location"] = status_url
    return resp
