"""What the API, CLI and dashboard show of a release: the whole story in one document."""

from __future__ import annotations

from typing import Any

from app.config import CheckConfig
from app.context import Context
from app.decide import describe_threshold
from app.models import Release
from app.redact import safe_url


def release_summary(release: Release) -> dict[str, Any]:
    data = release.model_dump(exclude={"hooks"})
    data["current_step"] = release.step + 1 if release.step >= 0 else None
    data["weights"] = release.desired_weights
    data["duration_seconds"] = round((release.finished_at or release.updated_at) - release.created_at, 1)
    return data


def check_thresholds(check: CheckConfig) -> dict[str, Any]:
    """A check's numeric thresholds, for charts: min / max are lines, max_over_stable is a limit
    that moves with the stable version's value at each evaluation."""
    return {
        "name": check.name,
        "type": check.type,
        "threshold": describe_threshold(check),
        "min": check.min,
        "max": check.max,
        "max_over_stable": check.max_over_stable,
        "under_seconds": check.under,
    }


def release_detail(ctx: Context, release: Release) -> dict[str, Any]:
    data = release_summary(release)
    try:
        _, _, policy = ctx.locate(release)
        data["steps"] = [s.model_dump(mode="json") for s in policy.steps]
        data["interval_seconds"] = policy.interval
        data["tolerance"] = policy.tolerance
        data["checks"] = [check_thresholds(c) for c in policy.checks]
    except LookupError:
        data["steps"] = []
        data["interval_seconds"] = None
        data["tolerance"] = None
        data["checks"] = []
    data["evaluations"] = [e.model_dump() for e in ctx.store.evaluations(release.id)]
    data["events"] = [e.model_dump() for e in ctx.store.events(release.id)]
    data["duplicate_notifications"] = ctx.store.duplicates(release.id)
    data["hook_deliveries"] = [
        d.model_copy(update={"target": safe_url(d.target)}).model_dump() for d in ctx.store.deliveries(release.hooks)
    ]
    return data
