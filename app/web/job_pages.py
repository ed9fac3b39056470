"""Dashboard pages for replay and backtest jobs: the backtest forms, and one page per job.

Like the release page, each is a small HTML shell: static/jobs.js asks for the job over the API
(`/api/v1/replays/<id>`, `/api/v1/backtests/<id>`) until it is done, then draws it; a replay
with the release page's own per-check charts (static/dashboard.js). The Replay button sits on a
finished release's page.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from app.context import get_context
from app.web.dashboard import POLL_SECONDS
from app.web.openapi import Answers, doc

bp = Blueprint("job_pages", __name__, template_folder="templates")
PAGES = frozenset({"job_pages.backtests_page", "job_pages.replay_page", "job_pages.backtest_page"})
HTML: Answers = {200: ("text/html", "HTML."), 303: ("text/html", "Log in.")}


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
    """The policy a backtest uses when none is named (app/backtest.py: the service's first)."""
    if isinstance(policy, str):
        return policy
    named = [n for n in policy.model_dump().values() if n]  # type: ignore[attr-defined]
    return str(named[0]) if named else ""


@bp.get("/replays/<job_id>")
@doc("Dashboard: a replay job, step by step, with its per-check charts", "dashboard", HTML)
def replay_page(job_id: str):
    return render_template("replay.html", job_id=job_id, poll_seconds=POLL_SECONDS)


@bp.get("/backtests/<job_id>")
@doc("Dashboard: a backtest job's table", "dashboard", HTML)
def backtest_page(job_id: str):
    return render_template("backtest.html", job_id=job_id, poll_seconds=POLL_SECONDS)
