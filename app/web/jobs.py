"""Replays and backtests as API jobs: `POST /api/v1/replays`, `POST /api/v1/backtests`, and their status.

A request is validated here (each field named with how to fix it; 404 for an unknown release or
service), then recorded and queued by the store (app/store/jobs.py) and answered 202 with the
job's URL in `Location`. A worker runs it (app/analysis/jobs.py); `GET` on that URL says queued, running,
done (with the report) or failed (with why). The same request within the dedup window answers 200
with the job already asked for.

Asking is a read, not a change: a replay or backtest moves no traffic and sends no hook. So a
read token (or the dashboard's session, whose SameSite=Strict cookie other sites cannot send)
may ask, as the dashboard's Replay button and backtest form do.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for
from pydantic import BaseModel, ConfigDict, Field

from app.analysis.job_reports import BacktestReport, ReplayReport
from app.config_file.schema import SluiceConfig
from app.context import get_context
from app.core.names import LABEL_VALUE_RE, NAME_RE
from app.store.jobs import Job, JobKind
from app.web.auth import require_read
from app.web.bodies import json_body
from app.web.errors import ApiError
from app.web.openapi import doc, error
from app.web.responses import respond

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")

MAX_SINCE_DAYS = 30  # Prometheus's usual retention is 15 days; a month is already a long replay
MIN_SINCE_SECONDS = 600
SINCE_PATTERN = r"^[0-9]{1,4}(\.[0-9]{1,3})?(d|h|m)$"
RELEASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
NAME = NAME_RE.pattern


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(max_length=100, pattern=RELEASE_ID_PATTERN, description="The release to replay, e.g. r-…")
    policy: str | None = Field(
        None, max_length=63, pattern=NAME, description="Replay under this policy instead of the release's own."
    )


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(
        max_length=63, pattern=LABEL_VALUE_RE.pattern, description="The service whose past versions to judge."
    )
    since: str = Field(
        "14d", pattern=SINCE_PATTERN, description=f"How far back: 14d, 36h, 90m (10m to {MAX_SINCE_DAYS}d)."
    )
    policy: str | None = Field(None, max_length=63, pattern=NAME, description="Judge under this policy.")
    compare: list[str] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Two policies side by side (instead of `policy`): where they disagree.",
    )
    application: str | None = Field(
        None, max_length=63, pattern=NAME, description="The service's application, if several have one of its name."
    )


class JobAccepted(BaseModel):
    """A job asked for (202), or the same request's job from moments ago (200, `duplicate`)."""

    id: str
    kind: JobKind
    status: str
    status_url: str = Field(description="GET it for the status and, when done, the result.")
    page_url: str = Field(description="The job's dashboard page.")
    duplicate: bool


class ReplayJob(Job):
    result: ReplayReport | None = None  # type: ignore[assignment]


class BacktestJob(Job):
    result: BacktestReport | None = None  # type: ignore[assignment]


ACCEPTED = {
    202: (JobAccepted, "Queued; `Location` (and `status_url`) is where to follow it."),
    200: (JobAccepted, "The same request was made moments ago: its job."),
    400: error("A field is invalid (named in the message or `detail`, with how to fix it)."),
    401: error("A read token (or the dashboard's session) is needed."),
    415: error("The body is not JSON."),
    503: error("Redis is unreachable; nothing was queued: retry (`Retry-After`)."),
}


def _policy(config: SluiceConfig, field: str, name: str) -> str:
    names = [p.name for p in config.policies]
    if name not in names:
        raise ApiError(400, f"`{field}`: no policy {name!r} in the configuration; use one of {', '.join(names)}")
    return name


def _since(text: str) -> str:
    seconds = float(text[:-1]) * {"d": 86400, "h": 3600, "m": 60}[text[-1]]
    if seconds > MAX_SINCE_DAYS * 86400:
        raise ApiError(400, f"`since`: {text} is more than {MAX_SINCE_DAYS}d; ask for at most {MAX_SINCE_DAYS}d")
    if seconds < MIN_SINCE_SECONDS:
        raise ApiError(400, f"`since`: {text} is too short to find a version change; ask for at least 10m")
    return text


# A job costs a worker seconds of CPU and a read token may ask for one: beyond this many waiting,
# new requests are turned away (429) rather than queued behind each other for minutes.
MAX_WAITING_JOBS = 20


def _accepted(kind: JobKind, data: dict[str, Any]) -> Any:
    ctx = get_context()
    settings = ctx.config.jobs
    waiting = ctx.store.jobs.waiting()
    if waiting >= MAX_WAITING_JOBS:
        raise ApiError(
            429,
            f"{waiting} replay/backtest jobs are already waiting for a worker; ask again in a minute "
            "(or run a worker for them: sluice worker --serves jobs)",
            headers={"Retry-After": "60"},
        )
    job, new = ctx.store.jobs.submit(kind, data, ttl=settings.result_ttl, window=settings.dedup_window)
    status_url = url_for(f"jobs.get_{kind}", job_id=job.id)
    body = JobAccepted(
        id=job.id,
        kind=kind,
        status=job.status,
        status_url=status_url,
        page_url=url_for(f"job_pages.{kind}_page", job_id=job.id),
        duplicate=not new,
    )
    return respond(body, 202 if new else 200, headers={"Location": status_url})


@bp.post("/replays")
@doc(
    "Replay a past release on Prometheus's stored data, under its policy or another (a job)",
    "jobs",
    {
        **ACCEPTED,
        404: error("No such release."),
        409: error("The release's service is no longer configured."),
        429: error("Too many jobs waiting; Retry-After says when to ask again."),
    },
    body=ReplayRequest,
    security=["bearer", "session"],
)
def post_replay():
    require_read()
    asked = json_body(ReplayRequest, strict=True)
    ctx = get_context()
    release = ctx.store.get(asked.release)
    if release is None:
        raise ApiError(404, f"`release`: no release {asked.release!r}; list releases with GET /api/v1/releases")
    app = ctx.config.application(release.application)
    if app is None or app.service(release.service) is None:
        raise ApiError(
            409,
            f"cannot replay {release.id}: service {release.service!r} of application {release.application!r} "
            "is no longer in the configuration",
        )
    data: dict[str, Any] = {"release": release.id}
    if asked.policy is not None:
        data["policy"] = _policy(ctx.config, "policy", asked.policy)
    elif release.policy not in {p.name for p in ctx.config.policies}:
        raise ApiError(
            400,
            f"`policy`: the release's policy {release.policy!r} is no longer configured; name one to replay it under",
        )
    return _accepted("replay", data)


@bp.post("/backtests")
@doc(
    "Backtest a service: every past version change in the period, judged under a policy (or two) (a job)",
    "jobs",
    {
        **ACCEPTED,
        404: error("No such service (or application)."),
        429: error("Too many jobs waiting; Retry-After says when to ask again."),
    },
    body=BacktestRequest,
    security=["bearer", "session"],
)
def post_backtest():
    require_read()
    asked = json_body(BacktestRequest, strict=True)
    config = get_context().config
    apps = config.find_service(asked.service, asked.application)
    if not apps:
        where = f" in application {asked.application!r}" if asked.application else ""
        raise ApiError(
            404, f"`service`: no service {asked.service!r}{where}; GET /api/v1/applications lists the services"
        )
    if len(apps) > 1:
        raise ApiError(
            400,
            f"`application`: service {asked.service!r} is in {', '.join(a.name for a in apps)}; name the application",
        )
    data: dict[str, Any] = {"service": asked.service, "since": _since(asked.since), "application": apps[0].name}
    if asked.policy is not None and asked.compare is not None:
        raise ApiError(400, "give `policy` or `compare`, not both (`compare` names the two policies)")
    if asked.policy is not None:
        data["policy"] = _policy(config, "policy", asked.policy)
    if asked.compare is not None:
        first, second = (_policy(config, "compare", name) for name in asked.compare)
        if first == second:
            raise ApiError(400, "`compare`: name two different policies")
        data["compare"] = [first, second]
    return _accepted("backtest", data)


def _job(kind: JobKind, job_id: str) -> Job:
    job = get_context().store.jobs.current(job_id)
    if job is None or job.kind != kind:
        days = get_context().config.jobs.result_ttl / 86400
        raise ApiError(
            404,
            f"no {kind} {job_id!r} (results are kept {days:g} days); ask for one with POST /api/v1/{kind}s",
        )
    return job


@bp.get("/replays/<job_id>")
@doc(
    "A replay job: queued, running, done (with the step-by-step report) or failed (with why)",
    "jobs",
    {200: (ReplayJob, "The job."), 404: error("No such replay (or its result expired).")},
)
def get_replay(job_id: str):
    return respond(ReplayJob.model_validate(_job("replay", job_id).model_dump()))


@bp.get("/backtests/<job_id>")
@doc(
    "A backtest job: queued, running, done (with the table) or failed (with why)",
    "jobs",
    {200: (BacktestJob, "The job."), 404: error("No such backtest (or its result expired).")},
)
def get_backtest(job_id: str):
    return respond(BacktestJob.model_validate(_job("backtest", job_id).model_dump()))
