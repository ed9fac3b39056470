"""The dashboard (`/`, `/releases/<id>`, `/login`) and Sluice's own `/metrics`.

The pages are small HTML shells; the browser polls the JSON API (`/api/v1/...`) every
couple of seconds and draws the charts with the vendored uPlot (static/vendor, MIT):
nothing is loaded from the internet. Steering buttons send the API token the person
typed (kept in the tab's sessionStorage) as `Authorization: Bearer`.

Reading needs a token (app/web/auth.py): the pages redirect to `/login`, whose form posts a read
(or API) token once per browser session and gets an HttpOnly, SameSite=Strict session cookie. A
cookie rather than a header from sessionStorage because the pages themselves, `/metrics` and
`/openapi.json` are opened by navigation, which cannot carry a header; HttpOnly keeps it away from
scripts; SameSite=Strict keeps other sites from using it; and it holds an HMAC, not the token.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.context import get_context
from app.telemetry import metrics
from app.web import auth
from app.web.openapi import doc, error

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

POLL_SECONDS = 2.0
PAGES = frozenset({"dashboard.index", "dashboard.release_page"})


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (no `//host`, no scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2000:
        return "/"
    if any(c in target for c in "\r\n\\") or not target.isprintable():
        return "/"
    return target.rstrip("?") or "/"


def login_url(next_path: str) -> str:
    return "/login?" + urlencode({"next": _safe_next(next_path)})


@bp.get("/")
@doc("Dashboard: the list of releases", "dashboard", {200: ("text/html", "HTML."), 303: ("text/html", "Log in.")})
def index():
    return render_template("releases.html", poll_seconds=POLL_SECONDS)


@bp.get("/releases/<release_id>")
@doc(
    "Dashboard: one release, live",
    "dashboard",
    {200: ("text/html", "HTML."), 303: ("text/html", "Log in."), 404: ("text/html", "No such release.")},
)
def release_page(release_id: str):
    release = get_context().store.get(release_id)
    if release is None:
        return render_template("missing.html", release_id=release_id), 404
    return render_template("release.html", release=release, poll_seconds=POLL_SECONDS)


@bp.route("/login", methods=["GET", "POST"])
@doc(
    "Dashboard login: a read (or API) token, once per browser session, for an HttpOnly session cookie",
    "dashboard",
    {
        200: ("text/html", "The form."),
        303: ("text/html", "Logged in: on to `next`."),
        401: ("text/html", "Wrong token: the form again."),
    },
)
def login():
    next_path = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next_path=next_path, public=auth.public_reads())
    token = request.form.get("token", "").strip()
    if not token or not auth.check_login(token):
        message = "Wrong token." if token else "Enter a token."
        if not auth.tokens(auth.READ_ENVS):
            message = "This server has no read token: set SLUICE_READ_TOKEN (or SLUICE_API_TOKEN) where Sluice runs."
        return render_template("login.html", next_path=next_path, message=message), 401
    resp = redirect(next_path, 303)
    resp.set_cookie(
        auth.SESSION_COOKIE,
        auth.new_session(token),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return resp


@bp.post("/logout")
@doc("Dashboard logout: ends the session cookie", "dashboard", {303: ("text/html", "To the login form.")})
def logout():
    resp = redirect("/login", 303)
    resp.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return resp


@bp.get("/metrics")
@doc(
    "Sluice's own metrics (Prometheus text format)",
    "operations",
    {200: ("text/plain", "Metrics."), 401: error("A read token is needed.")},
)
def prometheus_metrics():
    registry = current_app.extensions.get("sluice_metrics")
    if registry is None:
        registry = current_app.extensions["sluice_metrics"] = metrics.registry(lambda: get_context().store)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
