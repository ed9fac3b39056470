"""Dashboard pages for replay and backtest jobs: the backtest forms, and one page per job.

Like the release page, each is a small HTML shell: static/jobs.js asks for the job over the API
(`/api/v1/replays/<id>`, `/api/v1/backtests/<id>`) until it is done, then draws it; a replay
with the release page's own per-check charts (static/dashboard.js). The Replay button sits on a
finished release's page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from app.context import get_context
from app.web.dashboard import POLL_SECONDS
from app.web.openapi import Answers, doc

bp = Blueprint("job_pages", __name__, template_folder="templates")
PAGES = frozenset({"job_pages.backtests_page", "job_pages.replay_page", "job_pages.backtest_page"})
HTML: Answers = {200: ("text/html", "HTML."), 303: ("text/html", "Log in.")}
JOB_PAGE: Answers = {**HTML, 404: ("text/html", "No such job (or its result expired).")}


@bp.get("/backtests")
@doc("Dashboard: a backtest form per service", "dashboard", HTML)
def backtests_page():
    config = get_context().config
    services = [
        (app.name, svc.name, _default_policy(svc.policy)) for app in config.applications for svc in app.services
    ]
    return render_template(
        "backtests.html", services=services, policies=[p.name for p in config.policies], poll_seconds=POLL_SECONDS
    )


def _default_policy(policy: object) -> str:
    """The policy a backtest uses when none is named (app/analysis/backtest.py: the service's first)."""
    if isinstance(policy, str):
        return policy
    named = [n for n in policy.model_dump().values() if n]  # type: ignore[attr-defined]
    return str(named[0]) if named else ""


def _job_page(kind: str, job_id: str) -> Any:
    ctx = get_context()
    job = ctx.store.jobs.get(job_id)
    if job is None or job.kind != kind:
        days = f"{ctx.config.jobs.result_ttl / 86400:g}"
        return render_template("job_missing.html", kind=kind, job_id=job_id, days=days), 404
    return render_template(f"{kind}.html", job_id=job_id, poll_seconds=POLL_SECONDS)


@bp.get("/replays/<job_id>")
@doc("Dashboard: a replay job, step by step, with its per-check charts", "dashboard", JOB_PAGE)
def replay_page(job_id: str):
    return _job_page("replay", job_id)


@bp.get("/backtests/<job_id>")
@doc("Dashboard: a backtest job's table", "dashboard", JOB_PAGE)
def backtest_page(job_id: str):
    return _job_page("backtest", job_id)
