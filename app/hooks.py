"""Which hooks a release event causes, and the delivery records that carry them.

A delivery's id is derived from (release, event, step, hook), so a tick that is redone
after a crash plans the same ids, and the store's SET NX makes it a no-op.
"""

from __future__ import annotations

import re
from typing import Any

from app.config import SluiceConfig, WebhookHook
from app.models import Release

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


def _applies(hook: WebhookHook, release: Release, event: str) -> bool:
    return (
        event in hook.on
        and (hook.services is None or release.service in hook.services)
        and (hook.applications is None or release.application in hook.applications)
    )


def plan_deliveries(config: SluiceConfig, release: Release, event: str, now: float) -> list[dict[str, Any]]:
    fields = release_fields(release)
    deliveries = []
    for hook in config.hooks:
        if not _applies(hook, release, event):
            continue
        step_part = f":{release.step}" if event == "step_passed" else ""
        payload = {"event": event, "release": fields, "url": f"/api/v1/releases/{release.id}"}
        if hook.payload:
            payload.update(render_payload(hook.payload, fields))
        deliveries.append(
            {
                "id": f"{release.id}:{event}{step_part}:{hook.name}",
                "release_id": release.id,
                "hook": hook.name,
                "type": hook.type,
                "event": event,
                "target": hook.url,
                "payload": payload,
                "state": "pending",
                "attempts": [],
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    return deliveries
