"""What the HTTP API answers: pydantic models, serialised by `respond` and described by
/openapi.json (app/web/openapi.py) from the same classes. The release documents themselves
(ReleaseSummary, ReleaseDetail) are in app/release/views.py: the CLI and dashboard show them too."""

from __future__ import annotations

from typing import Any, Literal, cast

from flask import Response, current_app
from pydantic import BaseModel, Field

from app.core.config.policy import PolicyConfig
from app.core.models import ReleaseState
from app.core.names import LABEL_VALUE_RE
from app.release.views import ReleaseSummary


def respond(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None, **dump: Any) -> Response:
    """A model as the JSON body of a response (`dump`: model_dump options, e.g. exclude_none)."""
    resp = cast(Response, current_app.json.response(model.model_dump(mode="json", **dump)))
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


class Error(BaseModel):
    """Every error: a message that says what to fix, and sometimes details."""

    error: str
    detail: Any = None


class ReleaseQuery(BaseModel):
    """Filters and paging of GET /api/v1/releases."""

    service: str | None = Field(None, description="Only this service.", pattern=LABEL_VALUE_RE.pattern, max_length=63)
    application: str | None = Field(
        None, description="Only this application.", pattern=LABEL_VALUE_RE.pattern, max_length=63
    )
    state: ReleaseState | None = Field(None, description="Only releases in this state.")
    limit: int = Field(50, ge=1, le=500, description="Page size.")
    offset: int = Field(0, ge=0, le=1_000_000, description="Skip (ignored with `cursor`).")
    cursor: str | None = Field(
        None, max_length=200, description="The `next_cursor` of the previous page: the page after it."
    )


class ReleaseList(BaseModel):
    releases: list[ReleaseSummary]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")


class SteerRequest(BaseModel):
    reason: str | None = Field(None, max_length=500, description="Recorded on the release's event log.")


class ServiceInfo(BaseModel):
    name: str
    policy: str | dict[str, str]
    stable_version: str | None
    active_release: str | None


class ApplicationInfo(BaseModel):
    name: str
    namespace: str
    router: str
    services: list[ServiceInfo]


class ApplicationList(BaseModel):
    applications: list[ApplicationInfo]


class PolicyList(BaseModel):
    policies: list[PolicyConfig]


class Health(BaseModel):
    status: str
    detail: dict[str, str] | None = None


class Started(BaseModel):
    """A deploy notification's release: started (202), or found already started (200, a duplicate)."""

    status: Literal["started", "duplicate"]
    release: str
    state: ReleaseState
    status_url: str
    duplicate: bool
    service: str
    source_version: str
    target_version: str
    policy: str
    mode: Literal["live", "shadow"] = Field("live", description="shadow: judged only; traffic is not moved.")
    fleet: str | None = Field(None, description="The fleet the announcement started: `release` is its first member.")
    fleet_url: str | None = None


class NotStarted(BaseModel):
    """A notification that started nothing: `ignored` (202, with the reason), a `duplicate` of an
    event already processed (200, with its release or reason), or `processing` (409: the first
    delivery of the event is still being processed; retry)."""

    status: Literal["ignored", "duplicate", "processing"]
    reason: str | None = None
    duplicate: bool | None = None
    release: str | None = None
    status_url: str | None = None


class DoctorFinding(BaseModel):
    """One check of `sluice doctor`: what was found and, unless it passed, how to fix it."""

    name: str
    status: Literal["pass", "warn", "fail"]
    detail: str
    fix: str = ""


class DoctorReport(BaseModel):
    """`sluice doctor` over HTTP: `ok` is false when any check failed (warnings allowed)."""

    ok: bool
    findings: list[DoctorFinding]
