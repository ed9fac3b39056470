"""REST API of fleets (docs/fleets.md): list, detail, abort, approve a wave."""

from __future__ import annotations

import re

from flask import Blueprint, request

from app.context import get_context
from app.release.fleet_views import FleetDetail, FleetList, fleet_detail, fleet_view
from app.release.fleets import FleetError, abort_fleet, approve_fleet
from app.web.audit import record
from app.web.auth import require_token
from app.web.bodies import steer_reason
from app.web.errors import ApiError
from app.web.openapi import doc, error
from app.web.responses import SteerRequest, respond

bp = Blueprint("fleets", __name__, url_prefix="/api/v1")
_FLEET_ID = re.compile(r"^f-[A-Za-z0-9_-]{1,64}$")


def _checked(fleet_id: str) -> str:
    if not _FLEET_ID.match(fleet_id):
        raise ApiError(404, f"no fleet {fleet_id[:80]!r}: fleet ids look like f-20261207143000-1a2b3c4d")
    return fleet_id


@bp.get("/fleets")
@doc("Fleets, newest first, each with its waves and members", "fleets", {200: (FleetList, "The fleets.")})
def list_fleets():
    ctx = get_context()
    service = request.args.get("service")
    limit = request.args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        raise ApiError(400, "`limit` must be an integer between 1 and 500")
    fleets = ctx.store.fleets.recent(int(limit), service=service)
    return respond(FleetList(fleets=[fleet_view(ctx, f) for f in fleets]))


@bp.get("/fleets/<fleet_id>")
@doc(
    "A fleet: its waves, each member release's state, its events and its own CI hooks",
    "fleets",
    {200: (FleetDetail, "The fleet."), 404: error("No such fleet.")},
)
def get_fleet(fleet_id: str):
    ctx = get_context()
    fleet = ctx.store.fleets.get(_checked(fleet_id))
    if fleet is None:
        raise ApiError(404, f"no fleet {fleet_id!r}; list fleets with GET /api/v1/fleets")
    return respond(fleet_detail(ctx, fleet))


@bp.post("/fleets/<fleet_id>/abort")
@doc(
    "Stop a fleet: its releases in flight are aborted; applications already done keep the version",
    "fleets",
    {
        200: (FleetDetail, "The fleet, aborted."),
        401: error("Missing or wrong bearer token."),
        403: error("The token's role does not steer (operator or admin needed)."),
        404: error("No such fleet."),
        409: error("The fleet has finished, or is busy."),
    },
    body=SteerRequest,
    body_required=False,
    security=["bearer"],
)
def abort(fleet_id: str):
    who = require_token()
    reason = steer_reason()
    ctx = get_context()
    try:
        fleet = abort_fleet(ctx, _checked(fleet_id), who.actor(), reason)
    except FleetError as exc:
        raise ApiError(exc.status, str(exc)) from None
    record(who, "abort", fleet_id, reason)
    return respond(fleet_detail(ctx, fleet))


@bp.post("/fleets/<fleet_id>/approve")
@doc(
    "Approve the start of the wave a fleet waits for (`approve_before`)",
    "fleets",
    {
        200: (FleetDetail, "The fleet, its wave approved (it starts at the next look, within a second or so)."),
        401: error("Missing or wrong bearer token."),
        403: error("The token's role does not steer (operator or admin needed)."),
        404: error("No such fleet."),
        409: error("The fleet waits for no approval, or is busy."),
    },
    security=["bearer"],
)
def approve(fleet_id: str):
    who = require_token()
    ctx = get_context()
    try:
        fleet = approve_fleet(ctx, _checked(fleet_id), who.actor())
    except FleetError as exc:
        raise ApiError(exc.status, str(exc)) from None
    record(who, "approve", fleet_id, f"wave {fleet.wave + 1}")
    return respond(fleet_detail(ctx, fleet))
