"""Which hooks a release event causes, and the delivery records that carry them.

A delivery's id is derived from (release, event, step, hook), so a tick that is redone
after a crash plans the same ids, and the store's SET NX makes it a no-op.
"""

from __future__ import annotations

import os
import re
from typing import Any

from app.config import HookConfig, SluiceConfig
from app.models import Delivery, Release

_FIELD_RE = re.compile(r"\{([a-z_.]+)\}")


def release_fields(release: Release) -> dict[str, Any]:
    """The fields a hook payload can use, e.g. "{target_version}" or "{ci.workflow_id}"."""
    fields: dict[str, Any] = {
        "release_id": release.id,
        "application": release.application,
        "namespace": release.namespace,
        "service": release.service,
        "source_version": release.source_version,
        "target_version": release.target_version,
        "state": release.state,
        "policy": release.policy,
        "step": release.step + 1,
        "reason": release.reason or "",
    }
    for key, value in release.ci.model_dump().items():
        fields[f"ci.{key}"] = value if value is not None else ""
    return fields


def render_payload(template: Any, fields: dict[str, Any]) -> Any:
    """Fill `{field}` placeholders inside the strings of a JSON-like structure.

    Values are substituted into strings of the structure, never into serialised JSON, so
    a field value cannot change the payload's shape. A string that is exactly one
    placeholder takes the field's own type (a number stays a number).
    """
    if isinstance(template, dict):
        return {k: render_payload(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [render_payload(v, fields) for v in template]
    if isinstance(template, str):
        whole = _FIELD_RE.fullmatch(template)
        if whole and whole.group(1) in fields:
            return fields[whole.group(1)]
        return _FIELD_RE.sub(lambda m: str(fields.get(m.group(1), m.group(0))), template)
    return template


def _applies(hook: HookConfig, release: Release, event: str) -> bool:
    return (
        event in hook.on
        and (hook.services is None or release.service in hook.services)
        and (hook.applications is None or release.application in hook.applications)
    )


def _plan_hook(config: SluiceConfig, hook: HookConfig, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where a delivery goes (shown on the release: no secrets) and what it adds to the payload.

    Templates are rendered here, when the event happens, so every retry sends the same thing.
    """
    if hook.type == "webhook":
        return hook.url, render_payload(hook.payload, fields) if hook.payload else {}
    if hook.type == "slack":
        return f"slack incoming webhook (${hook.url_env})", {}
    if hook.type == "pagerduty":
        return f"{hook.api_url.rstrip('/')}/v2/enqueue", {}
    api = circleci_api_url(config)
    workflow = fields.get("ci.workflow_id") or "<no workflow id>"
    if hook.type == "circleci_approve":
        return f"{api}/workflow/{workflow}/approve", {"circleci": {"workflow_id": fields.get("ci.workflow_id")}}
    if hook.type == "circleci_cancel_workflow":
        return f"{api}/workflow/{workflow}/cancel", {"circleci": {"workflow_id": fields.get("ci.workflow_id")}}
    slug = hook.project_slug or fields.get("ci.project_slug") or ""
    call: dict[str, Any] = {
        "project_slug": slug,
        "parameters": render_payload(hook.parameters, fields),
        "definition_id": hook.definition_id,
    }
    if hook.branch:
        call["branch"] = render_payload(hook.branch, fields)
    if hook.tag:
        call["tag"] = render_payload(hook.tag, fields)
    path = f"/project/{slug or '<no project slug>'}/pipeline" + ("/run" if hook.definition_id else "")
    return api + path, {"circleci": call}


def circleci_api_url(config: SluiceConfig) -> str:
    return (os.environ.get("CIRCLECI_API_URL") or config.circleci.api_url).rstrip("/")


def plan_deliveries(config: SluiceConfig, release: Release, event: str, now: float) -> list[Delivery]:
    fields = release_fields(release)
    deliveries = []
    for hook in config.hooks:
        if not _applies(hook, release, event):
            continue
        step_part = f":{release.step}" if event == "step_passed" else ""
        payload = {"event": event, "release": fields, "url": f"/api/v1/releases/{release.id}"}
        target, extra = _plan_hook(config, hook, fields)
        payload.update(extra)
        deliveries.append(
            {
                "id": f"{release.id}:{event}{step_part}:{hook.name}",
                "release_id": release.id,
                "hook": hook.name,
                "type": hook.type,
                "event": event,
                "target": target,
                "payload": payload,
                "state": "pending",
                "attempts": [],
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    return [Delivery.model_validate(d) for d in deliveries]
