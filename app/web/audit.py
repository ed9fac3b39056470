"""The audit log: who did what, recorded for every steering action, approval, rollback, forced
release and known-bad change (and refusals of a token's role), readable at `GET /api/v1/audit`
and on the dashboard. Kept in Redis, newest first, the last AUDIT_MAX entries (app/store/people.py)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from flask import Blueprint, render_template, request
from pydantic import BaseModel, Field

from app.context import get_context
from app.store import StoreUnavailable
from app.store.people import AUDIT_MAX
from app.web.auth import Caller
from app.web.errors import ApiError
from app.web.openapi import doc
from app.web.responses import respond

log = logging.getLogger("sluice.audit")
bp = Blueprint("audit", __name__, url_prefix="/api/v1")
pages = Blueprint("audit_pages", __name__, template_folder="templates")
PAGES = frozenset({"audit_pages.audit_page"})
PAGE_ENTRIES = 200


class AuditEntry(BaseModel):
    at: float = Field(description="Unix seconds.")
    who: str = Field(description="A person's name, or a shared token's label (with the name its caller typed).")
    role: str
    action: str = Field(description="e.g. abort, approve, rollback, force, known-bad-clear, denied.")
    target: str = Field(description="The release, or application/service, acted on.")
    detail: str = ""


class AuditLog(BaseModel):
    entries: list[AuditEntry]
    limit: int
    offset: int


def record(who: Caller, action: str, target: str, detail: str = "", typed: str | None = None) -> None:
    """Append to the audit log; an outage of Redis loses the entry, not the action (it is logged)."""
    entry = AuditEntry(
        at=time.time(), who=who.actor(typed), role=who.role, action=action, target=target, detail=detail[:300]
    )
    log.info("audit: %s (%s) %s %s", entry.who, entry.role, action, target, extra={"audit": entry.model_dump()})
    try:
        get_context().store.people.audit(entry.model_dump())
    except StoreUnavailable:
        log.warning("audit entry not stored (Redis unreachable): %s %s %s", entry.who, action, target)


def _bounded(name: str, default: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isascii() or not raw.isdigit() or not 0 <= int(raw) <= high:
        raise ApiError(400, f"`{name}` must be an integer between 0 and {high}")
    return int(raw)


@bp.get("/audit")
@doc(
    "The audit log: who steered, approved, rolled back or changed what, newest first",
    "audit",
    {200: (AuditLog, "A page of entries.")},
)
def audit_log():
    limit, offset = _bounded("limit", 100, 500) or 1, _bounded("offset", 0, AUDIT_MAX)
    raw = get_context().store.people.audit_log(limit, offset)
    return respond(AuditLog(entries=[AuditEntry.model_validate(e) for e in raw], limit=limit, offset=offset))


@pages.get("/audit")
@doc("Dashboard: the audit log", "dashboard", {200: ("text/html", "HTML."), 303: ("text/html", "Log in.")})
def audit_page():
    raw = get_context().store.people.audit_log(PAGE_ENTRIES, 0)
    return render_template("audit.html", entries=[AuditEntry.model_validate(e) for e in raw])


@pages.app_template_filter("utc")
def _utc(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")
