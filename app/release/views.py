"""What the API, CLI and dashboard show of a release: the whole story in one document.

These models are what GET /api/v1/releases[/<id>] answer, and what /openapi.json describes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.context import Context
from app.core.config.policy import CheckConfig, StepConfig
from app.core.describe import describe_threshold, step_share
from app.core.known_bad import ROLLBACK_TRIGGER
from app.core.models import CheckResult, Delivery, Event, Release
from app.core.redact import safe_url


class ReleaseSummary(Release):
    """A release as listed: its record (without hook ids) and what a reader wants at a glance."""

    hooks: list[str] = Field(default_factory=list, exclude=True)
    current_step: int | None = Field(description="1-based current step, null before the first.")
    step_label: str | None = Field(
        None,
        description="What the current step sends to the candidate, in words: '10%', or a segment or mirror "
        "step by its shape ('segment header User-Agent ~ /Chrome/'). Null before the first step.",
    )
    weights: dict[str, int] = Field(description="Percent of traffic per version, as the release wants it.")
    duration_seconds: float


class CheckThreshold(BaseModel):
    """A check's numeric thresholds, for charts: min / max are lines, max_over_stable is a limit
    that moves with the stable version's value at each evaluation."""

    name: str
    type: str
    threshold: str
    min: float | None
    max: float | None
    max_over_stable: float | None
    under_seconds: float | None


class ReleaseDetail(ReleaseSummary):
    """The whole story: the policy's steps and checks, every evaluation, events, hook deliveries."""

    steps: list[StepConfig]
    step_labels: list[str] = Field(description="Each step's `step_label`, in order.")
    interval_seconds: float | None
    tolerance: int | None
    checks: list[CheckThreshold]
    evaluations: list[CheckResult]
    events: list[Event]
    duplicate_notifications: int
    hook_deliveries: list[Delivery]


def policy_steps(ctx: Context, release: Release) -> list[StepConfig]:
    """The release's steps: its policy's, one step of 100% for a rollback, none if the policy left."""
    try:
        return ctx.locate(release)[2].steps
    except LookupError:
        # A rollback has no policy: one step, all traffic on the previous version.
        return [StepConfig(weight=100)] if release.trigger == ROLLBACK_TRIGGER else []


def release_summary(release: Release, steps: list[StepConfig] | None = None) -> ReleaseSummary:
    current = steps[release.step] if steps and 0 <= release.step < len(steps) else None
    return ReleaseSummary(
        **release.model_dump(),
        current_step=release.step + 1 if release.step >= 0 else None,
        step_label=step_share(current) if current is not None else None,
        weights=release.desired_weights,
        duration_seconds=round((release.finished_at or release.updated_at) - release.created_at, 1),
    )


def check_thresholds(check: CheckConfig) -> CheckThreshold:
    return CheckThreshold(
        name=check.name,
        type=check.type,
        threshold=describe_threshold(check),
        min=check.min,
        max=check.max,
        max_over_stable=check.max_over_stable,
        under_seconds=check.under,
    )


def release_detail(ctx: Context, release: Release) -> ReleaseDetail:
    steps = policy_steps(ctx, release)
    try:
        _, _, policy = ctx.locate(release)
        interval, tolerance = policy.interval, policy.tolerance
        checks = [check_thresholds(c) for c in policy.checks]
    except LookupError:
        interval, tolerance, checks = None, None, []
    return ReleaseDetail(
        **release_summary(release, steps).model_dump(),
        steps=steps,
        step_labels=[step_share(s) for s in steps],
        interval_seconds=interval,
        tolerance=tolerance,
        checks=checks,
        evaluations=ctx.store.evaluations(release.id),
        events=ctx.store.events(release.id),
        duplicate_notifications=ctx.store.duplicates(release.id),
        hook_deliveries=[
            d.model_copy(update={"target": safe_url(d.target)}) for d in ctx.store.deliveries(release.hooks)
        ],
    )
