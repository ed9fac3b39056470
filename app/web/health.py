"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint

from app.context import get_context
from app.web.openapi import doc
from app.web.responses import Health, respond

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@doc("Liveness", "operations", {200: (Health, "The process is up.")})
def healthz():
    """The process is up (no dependencies checked: a Redis outage should not restart web pods)."""
    return respond(Health(status="ok"), exclude_none=True)


@bp.get("/readyz")
@doc(
    "Readiness: configuration loads and Redis answers",
    "operations",
    {200: (Health, "Ready."), 503: (Health, "Not ready, with the reason.")},
)
def readyz():
    """Ready to serve: configuration loads and Redis answers."""
    problems = {}
    try:
        ctx = get_context()
        ctx.store.ping()
    except Exception as exc:  # noqa: BLE001 - report any dependency failure as not ready
        problems["dependencies"] = type(exc).__name__ + ": " + str(exc).split("\n")[0][:200]
    if problems:
        return respond(Health(status="not ready", detail=problems), 503)
    return respond(Health(status="ready"), exclude_none=True)
