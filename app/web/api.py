"""REST API: releases (list, detail, pause/resume/promote/abort)."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from app.context import get_context
from app.control import ACTIONS, ControlError, control
from app.models import TERMINAL_STATES
from app.views import release_detail, release_summary
from app.web.auth import require_token
from app.web.errors import ApiError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
STATES = ("pending", "running", "paused", *sorted(TERMINAL_STATES))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # Plain ASCII digits only: int() would also take " 5", "1_0" and other scripts' digits.
    if not re.fullmatch(r"-?[0-9]{1,12}", raw):
        raise ApiError(400, f"`{name}` must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"`{name}` must be between {low} and {high}")
    return value


@bp.get("/releases")
def list_releases():
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, f"unknown state {state!r}; use one of {', '.join(STATES)}")
    limit = _int_arg("limit", 50, 1, 500)
    offset = _int_arg("offset", 0, 0, 10**6)
    page, total = get_context().store.list_releases(
        service=request.args.get("service"),
        application=request.args.get("application"),
        state=state,
        limit=limit,
        offset=offset,
    )
    return jsonify({"releases": [release_summary(r) for r in page], "total": total, "limit": limit, "offset": offset})


@bp.get("/releases/<release_id>")
def get_release(release_id: str):
    ctx = get_context()
    release = ctx.store.get(release_id)
    if release is None:
        raise ApiError(404, f"no release {release_id!r}; list releases with GET /api/v1/releases")
    return jsonify(release_detail(ctx, release))


@bp.post("/releases/<release_id>/<action>")
def steer(release_id: str, action: str):
    if action not in ACTIONS:
        raise ApiError(404, f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    require_token()
    reason = ""
    if request.content_length:
        body = request.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"][:500]
    ctx = get_context()
    try:
        release = control(ctx, release_id, action, actor="api", reason=reason)
    except ControlError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return jsonify(release_detail(ctx, release))


@bp.get("/applications")
def list_applications():
    """The configured applications and their services, with each service's stable version and
    the release now moving its traffic (if any)."""
    ctx = get_context()
    apps = []
    for app in ctx.config.applications:
        services = []
        for svc in app.services:
            policy = svc.policy if isinstance(svc.policy, str) else svc.policy.model_dump(exclude_none=True)
            services.append(
                {
                    "name": svc.name,
                    "policy": policy,
                    "stable_version": ctx.store.stable_version(app.name, svc.name) or svc.stable_version,
                    "active_release": ctx.store.active_release(app.name, svc.name),
                }
            )
        apps.append({"name": app.name, "namespace": app.namespace, "router": app.router.type, "services": services})
    return jsonify({"applications": apps})


@bp.get("/policies")
def list_policies():
    """The configured release policies: steps, interval, checks and their thresholds, tolerance."""
    return jsonify({"policies": [p.model_dump(mode="json") for p in get_context().config.policies]})
