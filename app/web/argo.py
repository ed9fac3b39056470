"""`POST /hooks/argocd` and `POST /hooks/argo-rollouts`: Argo notifications start releases.

Authenticated by `Authorization: Bearer $SLUICE_API_TOKEN` (Argo's webhook service cannot sign).
Bodies are the ones rendered by the templates in integrations/argo/, accepted as JSON whatever
the Content-Type (Argo CD sends none unless configured). The `argo` section of the configuration
maps an Application / Rollout to a service, and says whether the version is the image tag or the
revision. One (app, revision, finishedAt) is processed once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from pydantic import ValidationError

from app.config import ArgoMapping
from app.context import Context, get_context
from app.intake import IntakeError, start_release
from app.models import CIContext
from app.names import check_label_value
from app.web.auth import require_token
from app.web.errors import ApiError, validation_detail
from app.web.receivers import any_json_body, ignored, process_once, started
from integrations.argo.notifications import (
    ROLLOUT_START_EVENTS,
    ArgoCDNotification,
    RolloutNotification,
    image_tag,
)

bp = Blueprint("argo", __name__)


def _parse(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "the notification has invalid fields", validation_detail(exc)) from None


def _version(mapping: ArgoMapping, images: list[str], revision: str | None) -> str:
    try:
        if mapping.version_from == "revision":
            if not revision:
                raise ValueError("the notification carries no revision")
            return check_label_value(revision, "version")
        return check_label_value(image_tag(images, mapping.image, mapping.service), "version")
    except ValueError as exc:
        raise ApiError(400, f"cannot read the version of {mapping.name!r}: {exc}") from None


def _start(ctx: Context, source: str, event_key: str, mapping: ArgoMapping, version: str, namespace: str | None):
    def handle() -> tuple[Response, str]:
        ci = CIContext(provider=source)
        try:
            intake = start_release(ctx, mapping.service, version, mapping.application, namespace, ci, trigger=source)
        except IntakeError as exc:
            raise ApiError(exc.status, str(exc), exc.detail) from None
        return started(intake), intake.release.id

    return process_once(ctx, source, event_key, handle)


@bp.post("/hooks/argocd")
def argocd():
    require_token()
    note: ArgoCDNotification = _parse(ArgoCDNotification, any_json_body(request.get_data(cache=True)))
    ctx = get_context()
    mapping = next((m for m in ctx.config.argo.applications if m.name == note.app), None)
    if mapping is None:
        return ignored(f"Argo CD application {note.app!r} is not in argo.applications")
    if note.phase is not None and note.phase != "Succeeded":
        return ignored(f"sync phase is {note.phase!r}; only a Succeeded sync starts a release")
    if note.health is not None and note.health not in ("Healthy", "Progressing"):
        return ignored(f"application health is {note.health!r}")
    version = _version(mapping, note.images or [], note.revision)
    key = f"{note.app}:{note.revision or version}:{note.finishedAt or ''}"
    return _start(ctx, "argocd", key, mapping, version, note.namespace)


@bp.post("/hooks/argo-rollouts")
def argo_rollouts():
    require_token()
    note: RolloutNotification = _parse(RolloutNotification, any_json_body(request.get_data(cache=True)))
    ctx = get_context()
    mapping = next((m for m in ctx.config.argo.rollouts if m.name == note.rollout), None)
    if mapping is None:
        return ignored(f"rollout {note.rollout!r} is not in argo.rollouts")
    if note.event not in ROLLOUT_START_EVENTS:
        return ignored(f"event {note.event!r} does not start a release ({', '.join(ROLLOUT_START_EVENTS)} do)")
    version = _version(mapping, note.images, note.podHash if mapping.version_from == "revision" else None)
    key = f"{note.rollout}:{note.revision or note.podHash or version}:{note.event}"
    return _start(ctx, "argo-rollouts", key, mapping, version, note.namespace)
