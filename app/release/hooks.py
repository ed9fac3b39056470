"""Which hooks a release event causes, and the delivery records that carry them.

A delivery's id is derived from (release, event, step, hook), so a tick that is redone
after a crash plans the same ids, and the store's SET NX makes it a no-op.
"""

from __future__ import annotations

from typing import Any

from app.config_file.schema import HookConfig, SluiceConfig
from app.core.models import Delivery, Release
from app.release.shadow import hook_fires
from integrations.circleci.hooks import circleci_api_url
from integrations.notify.interface import render_payload
from integrations.registry.hooks import HOOKS

__all__ = ["circleci_api_url", "plan_deliveries", "release_fields", "render_payload"]


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
        "mode": release.mode,
    }
    for key, value in release.ci.model_dump().items():
        fields[f"ci.{key}"] = value if value is not None else ""
    return fields


def _applies(hook: HookConfig, release: Release, event: str) -> bool:
    return (
        event in hook.on
        and (hook.services is None or release.service in hook.services)
        and (hook.applications is None or release.application in hook.applications)
    )


def plan_deliveries(
    config: SluiceConfig, release: Release, event: str, now: float, gate: dict[str, str] | None = None
) -> list[Delivery]:
    """`gate` ({point, gate}): the manual gate an `approval_requested` delivery asks about (in its id
    and payload, so that each gate is asked once)."""
    fields = release_fields(release)
    deliveries = []
    for hook in config.hooks:
        if not _applies(hook, release, event) or not hook_fires(hook, HOOKS[hook.type].acts, release):
            continue
        if release.fleet and hook.type.startswith("circleci"):  # told once, by the fleet (docs/fleets.md)
            continue
        step_part = f":{release.step}" if event == "step_passed" else ""
        if gate is not None:
            step_part = f":{gate['point']}:{gate['gate']}"
        payload: dict[str, Any] = {"event": event, "release": fields, "url": f"/api/v1/releases/{release.id}"}
        if release.shadow:  # judged only: the receiver must not take it for a real rollout
            payload["shadow"] = True
        if gate is not None:
            payload["gate"] = dict(gate)
        # Where the delivery goes (shown on the release: no secrets) and what it adds to the payload,
        # rendered now so that every retry sends the same thing.
        target, extra = HOOKS[hook.type].plan(hook, fields, config)
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
