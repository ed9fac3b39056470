"""An announcement of a service that has a fleet (and names no application, namespace or mode) starts the
fleet (app/release/fleets.py) and answers with its first member release, like any announcement.
Every receiver (deploy webhook, CircleCI, Argo) asks here first (app/web/receivers.py `start`)."""

from __future__ import annotations

from app.context import Context
from app.core.models import CIContext
from app.core.names import check_label_value
from app.release.fleets import FleetError, first_release, fleet_for, start_fleet
from app.release.intake import Force, Intake, IntakeError


def fleet_intake(
    ctx: Context, service: str, version: str, ci: CIContext | None, trigger: str, force: Force | None
) -> Intake | None:
    """The fleet's answer, or None when the service has no fleet (a release of its one application)."""
    config = fleet_for(ctx, service)
    if config is None:
        return None
    try:
        check_label_value(version, "version")
    except ValueError as exc:
        raise IntakeError(400, str(exc)) from None
    actor = force.by if force is not None else None
    try:
        fleet, created = start_fleet(ctx, config, version, ci, trigger, actor=actor, forced=force is not None)
    except FleetError as exc:
        raise IntakeError(exc.status, str(exc)) from None
    release = first_release(ctx, fleet)
    detail = {"fleet": fleet.id, "status_url": f"/api/v1/fleets/{fleet.id}"}
    if release is None and fleet.terminal:
        raise IntakeError(409, f"fleet {fleet.id} {fleet.state}: {fleet.reason}", detail)
    if release is None:
        raise IntakeError(503, f"fleet {fleet.id} started; its first wave is being created: retry", detail)
    return Intake(release, created, fleet=fleet.id)
