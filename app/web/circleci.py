"""`POST /hooks/circleci`: CircleCI outbound webhooks (job-completed, workflow-completed).

Signature v1 (HMAC-SHA256 of the raw body with CIRCLECI_WEBHOOK_SECRET) is checked before
anything else. A successful deploy job (or workflow) named in the `circleci.projects` section of
the configuration starts a release whose version comes from the mapping's template, e.g.
`1.0.{pipeline.number}`, and which carries the CircleCI ids so that hooks can approve the held
job or trigger the cleanup pipeline. Everything else is answered 202 "ignored" so that CircleCI
does not retry it.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, request
from pydantic import ValidationError

from app.context import Context, get_context
from app.intake import IntakeError, start_release
from app.models import CIContext
from app.names import check_label_value
from app.web.errors import ApiError, validation_detail
from app.web.receivers import any_json_body, ignored, process_once, started
from integrations.circleci.events import TemplateError, build_url, render_version, verify_signature

bp = Blueprint("circleci", __name__)
EVENTS = ("job-completed", "workflow-completed")


def _check_signature(body: bytes) -> None:
    secret = os.environ.get("CIRCLECI_WEBHOOK_SECRET")
    if not secret:
        raise ApiError(401, "CircleCI webhooks are not enabled: set CIRCLECI_WEBHOOK_SECRET where Sluice runs")
    header = request.headers.get("circleci-signature")
    if not header:
        raise ApiError(401, "missing circleci-signature header (set the webhook's secret in CircleCI)")
    if not verify_signature(secret, header, body):
        raise ApiError(401, "circleci-signature does not match the body (HMAC-SHA256 with CIRCLECI_WEBHOOK_SECRET)")


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


@bp.post("/hooks/circleci")
def circleci():
    body = request.get_data(cache=True)
    _check_signature(body)
    data = any_json_body(body)
    event_type = data.get("type") or request.headers.get("circleci-event-type")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ApiError(400, "the payload has no `id`")
    if event_type not in EVENTS:
        return ignored(f"event type {event_type!r} is not one Sluice acts on ({', '.join(EVENTS)})")
    ctx = get_context()
    return process_once(ctx, "circleci", event_id, lambda: _handle(ctx, event_type, data))


def _handle(ctx: Context, event_type: str, data: dict[str, Any]) -> tuple[Response, str]:
    slug = _get(data, "project", "slug")
    job_name = _get(data, "job", "name") if event_type == "job-completed" else None
    workflow_name = _get(data, "workflow", "name")
    if not isinstance(slug, str) or not slug:
        raise ApiError(400, "the payload has no project.slug")
    if event_type == "job-completed":
        what, status = f"job {job_name!r}", _get(data, "job", "status")
        mapping = ctx.config.circleci.deploy_for(slug, job_name, None)
    else:
        what, status = f"workflow {workflow_name!r}", _get(data, "workflow", "status")
        mapping = ctx.config.circleci.deploy_for(slug, None, workflow_name)
    if mapping is None:
        known = [p.slug for p in ctx.config.circleci.projects]
        reason = (
            f"{what} of project {slug!r} is not a deploy in circleci.projects"
            if any(k.lower() == slug.lower() for k in known)
            else f"project {slug!r} is not in circleci.projects"
        )
        return ignored(reason), f"ignored: {reason}"
    if status != "success":
        reason = f"{what} finished with status {status!r}; only a successful deploy starts a release"
        return ignored(reason), f"ignored: {reason}"
    try:
        version = check_label_value(render_version(mapping.version, data), "version")
    except (TemplateError, ValueError) as exc:
        raise ApiError(400, f"version template {mapping.version!r}: {exc}") from None
    try:
        ci = CIContext(
            provider="circleci",
            project_slug=slug,
            workflow_id=_get(data, "workflow", "id"),
            pipeline_id=_get(data, "pipeline", "id"),
            pipeline_number=_get(data, "pipeline", "number"),
            job_number=_get(data, "job", "number"),
            job_name=job_name,
            build_url=build_url(data),
        )
    except ValidationError as exc:
        raise ApiError(400, "the payload has invalid CircleCI ids", validation_detail(exc)) from None
    try:
        intake = start_release(ctx, mapping.service, version, mapping.application, None, ci, trigger="circleci")
    except IntakeError as exc:
        raise ApiError(exc.status, str(exc), exc.detail) from None
    return started(intake), intake.release.id
