"""The dashboard (`/`, `/releases/<id>`) and Sluice's own `/metrics`.

The pages are small HTML shells; the browser polls the JSON API (`/api/v1/...`) every
couple of seconds and draws the charts with the vendored uPlot (static/vendor, MIT):
nothing is loaded from the internet. Steering buttons send the API token the person
typed (kept in the tab's sessionStorage) as `Authorization: Bearer`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.context import get_context
from app.web.openapi import doc

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

POLL_SECONDS = 2.0


@bp.get("/")
@doc("Dashboard: the list of releases", "dashboard", {200: ("text/html", "HTML.")})
def index():
    return render_template("releases.html", poll_seconds=POLL_SECONDS)


@bp.get("/releases/<release_id>")
@doc("Dashboard: one release, live", "dashboard", {200: ("text/html", "HTML."), 404: ("text/html", "No such release.")})
def release_page(release_id: str):
    release = get_context().store.get(release_id)
    if release is None:
        return render_template("missing.html", release_id=release_id), 404
    return render_template("release.html", release=release, poll_seconds=POLL_SECONDS)


@bp.get("/metrics")
@doc("Sluice's own metrics (Prometheus text format)", "operations", {200: ("text/plain", "Metrics.")})
def prometheus_metrics():
    registry = current_app.extensions.get("sluice_metrics")
    if registry is None:
        registry = current_app.extensions["sluice_metrics"] = metrics.registry(lambda: get_context().store)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
