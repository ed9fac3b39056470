"""What the API, CLI and dashboard show of a release: the whole story in one document."""

from __future__ import annotations

from typing import Any

from app.context import Context
from app.models import Release
from app.redact import safe_url


def release_summary(release: Release) -> dict[str, Any]:
    data = release.model_dump(exclude={"hooks"})
    data["current_step"] = release.step + 1 if release.step >= 0 else None
    data["weights"] = release.desired_weights
    data["duration_seconds"] = round((release.finished_at or release.updated_at) - release.created_at, 1)
    return data


def release_detail(ctx: Context, release: Release) -> dict[str, Any]:
    data = release_summary(release)
    try:
        _, _, policy = ctx.locate(release)
        data["steps"] = [s.model_dump(mode="json") for s in policy.steps]
    except LookupError:
        data["steps"] = []
    data["evaluations"] = [e.model_dump() for e in ctx.store.evaluations(release.id)]
    data["events"] = [e.model_dump() for e in ctx.store.events(release.id)]
    deliveries = ctx.store.deliveries(release.hooks)
    for d in deliveries:
        d["target"] = safe_url(d.get("target", ""))
    data["hook_deliveries"] = deliveries
    return data
