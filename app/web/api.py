"""REST API: releases (list, detail, pause/resume/promote/abort), applications, policies."""

from __future__ import annotations

import re

from flask import Blueprint, request

from app.context import get_context
from app.core.models import TERMINAL_STATES
from app.core.names import LABEL_VALUE_RE
from app.release.control import ACTIONS, ControlError, control
from app.release.unmatched import UnmatchedDeployList, unmatched_deploys
from app.release.views import ReleaseDetail, policy_steps, release_detail, release_summary
from app.store import BadCursor
from app.telemetry.delivery import DeliveryReport, summary
from app.web.audit import record
from app.web.auth import require_admin, require_token
from app.web.bodies import steer_reason
from app.web.errors import ApiError
from app.web.openapi import doc, error
from app.web.responses import (
    ApplicationInfo,
    ApplicationList,
    DoctorReport,
    PolicyList,
    ReleaseList,
    ReleaseQuery,
    ServiceInfo,
    SteerRequest,
    respond,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
STATES = ("pending", "running", "paused", "baking", *sorted(TERMINAL_STATES))


def _int_arg(name: str) -> int:
    """A paging argument within the bounds ReleaseQuery declares (and /openapi.json shows)."""
    info = ReleaseQuery.model_fields[name]
    low = next(m.ge for m in info.metadata if hasattr(m, "ge"))
    high = next(m.le for m in info.metadata if hasattr(m, "le"))
    raw = request.args.get(name)
    if raw is None:
        return int(info.default)
    # Plain ASCII digits only: int() would also take " 5", "1_0" and other scripts' digits.
    if not re.fullmatch(r"-?[0-9]{1,12}", raw):
        raise ApiError(400, f"`{name}` must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"`{name}` must be between {low} and {high}")
    return value


@bp.get("/releases")
@doc(
    "Releases, newest first, filtered and paged",
    "releases",
    {
        200: (ReleaseList, "A page of releases and the total that match."),
        400: error("A filter or paging value is invalid."),
    },
    query=ReleaseQuery,
)
def list_releases():
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, f"unknown state {state!r}; use one of {', '.join(STATES)}")
    limit, offset = _int_arg("limit"), _int_arg("offset")
    filters = {name: _name_arg(name) for name in ("service", "application")}
    try:
        page = get_context().store.release_page(
            **filters, state=state, limit=limit, offset=offset, cursor=request.args.get("cursor")
        )
    except BadCursor as exc:
        raise ApiError(400, str(exc)) from None
    ctx = get_context()
    return respond(
        ReleaseList(
            releases=[release_summary(r, policy_steps(ctx, r)) for r in page.releases],
            total=page.total,
            limit=limit,
            offset=offset,
            next_cursor=page.next_cursor,
        )
    )


def _name_arg(name: str) -> str | None:
    """A service or application filter: a name as the configuration allows one (it becomes part of
    an index key), else 400."""
    raw = request.args.get(name)
    if raw is not None and not LABEL_VALUE_RE.fullmatch(raw):
        raise ApiError(400, f"`{name}` must be a {name} name: 1-63 letters, digits, '-', '_' or '.'")
    return raw


@bp.get("/releases/<release_id>")
@doc(
    "The whole story of a release: state, steps, weights, every evaluation, events, hook deliveries",
    "releases",
    {200: (ReleaseDetail, "The release."), 404: error("No such release.")},
)
def get_release(release_id: str):
    ctx = get_context()
    release = ctx.store.get(release_id)
    if release is None:
        raise ApiError(404, f"no release {release_id!r}; list releases with GET /api/v1/releases")
    return respond(release_detail(ctx, release))


@bp.post("/releases/<release_id>/<action>")
@doc(
    "Steer a release: pause, resume, promote (all traffic to the candidate) or abort (all to stable)",
    "releases",
    {
        200: (ReleaseDetail, "The release after the action, on the router."),
        202: (
            ReleaseDetail,
            "The action is recorded and the worker applies it (`weights_applied` false, where the web does "
            "not steer the router itself); follow the release at `Location`.",
        ),
        401: error("Missing or wrong bearer token."),
        403: error("The token's role does not steer (operator or admin needed)."),
        404: error("No such release or action."),
        409: error("The action does not apply to the release's state, or a tick is running."),
    },
    path={"action": {"type": "string", "enum": list(ACTIONS)}},
    body=SteerRequest,
    body_required=False,
    security=["bearer"],
)
def steer(release_id: str, action: str):
    if action not in ACTIONS:
        raise ApiError(404, f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    who = require_token()
    reason = steer_reason()
    ctx = get_context()
    try:
        release = control(ctx, release_id, action, actor=who.actor(), reason=reason)
    except ControlError as exc:
        raise ApiError(exc.status, str(exc)) from None
    record(who, action, release_id, reason)
    if not release.weights_applied:  # recorded; a worker puts it on the router (app/release/handoff.py)
        return respond(release_detail(ctx, release), 202, {"Location": f"/api/v1/releases/{release.id}"})
    return respond(release_detail(ctx, release))


@bp.get("/applications")
@doc(
    "Applications and their services, with stable versions and active releases",
    "configuration",
    {200: (ApplicationList, "The configured applications.")},
)
def list_applications():
    """The configured applications and their services, with each service's stable version and
    the release now moving its traffic (if any)."""
    ctx = get_context()
    apps = [
        ApplicationInfo(
            name=app.name,
            namespace=app.namespace,
            router=app.router.type,
            services=[
                ServiceInfo(
                    name=svc.name,
                    policy=svc.policy if isinstance(svc.policy, str) else svc.policy.model_dump(exclude_none=True),
                    stable_version=ctx.store.stable_version(app.name, svc.name) or svc.stable_version,
                    active_release=ctx.store.active_release(app.name, svc.name),
                )
                for svc in app.services
            ],
        )
        for app in ctx.config.applications
    ]
    return respond(ApplicationList(applications=apps))


@bp.get("/policies")
@doc(
    "Release policies: steps, interval, checks and thresholds, tolerance",
    "configuration",
    {200: (PolicyList, "The configured policies.")},
)
def list_policies():
    """The configured release policies: steps, interval, checks and their thresholds, tolerance."""
    return respond(PolicyList(policies=get_context().config.policies))


@bp.get("/delivery")
@doc(
    "Delivery outcomes per service: releases, change failure rate, time to detect and to restore",
    "releases",
    {200: (DeliveryReport, "One row per service that has finished a release.")},
)
def delivery_outcomes():
    """The same numbers /metrics serves as sluice_delivery_*, per service, with means."""
    return respond(DeliveryReport(services=summary(get_context().store)))


@bp.get("/intake/unmatched")
@doc(
    "CircleCI deploys ignored because no circleci.projects slug matched, with how to fix each",
    "configuration",
    {200: (UnmatchedDeployList, "Slugs the configuration still does not match, most ignored first.")},
)
def list_unmatched_deploys():
    return respond(UnmatchedDeployList(unmatched=unmatched_deploys(get_context())))


@bp.get("/doctor")
@doc(
    "`sluice doctor`: the configuration checked against Redis, Prometheus, routers and hooks, with fixes",
    "configuration",
    {
        200: (DoctorReport, "Every check; `ok` is false when one failed."),
        401: error("Missing or wrong bearer token."),
        403: error("The token's role is not admin."),
    },
    security=["bearer"],
)
def doctor():
    from app.doctor.checks import passed, run_doctor

    require_admin()
    findings = run_doctor(get_context())
    return respond(DoctorReport(ok=passed(findings), findings=[f.as_dict() for f in findings]))
