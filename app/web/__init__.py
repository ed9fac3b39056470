"""The web process: webhook receivers, the REST API, health endpoints."""

from __future__ import annotations

import logging

from flask import Flask, redirect, request

from app.telemetry.logs import configure_logging
from app.web.bodies import MAX_BODY_BYTES

log = logging.getLogger("sluice.web")


def create_app() -> Flask:
    configure_logging()
    app = Flask("sluice")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from app.web import api, audit, auth, dashboard, deploy, errors, health, openapi

    errors.register(app)
    from app.web import deadline, security

    deadline.install(app)
    security.install(app)  # headers; the trusted proxy (outermost, so its client address is the one seen)
    app.register_blueprint(health.bp)
    app.register_blueprint(deploy.bp)
    from app.web import argo, circleci  # CI / GitOps receivers (issue #4)

    app.register_blueprint(circleci.bp)
    app.register_blueprint(argo.bp)
    from app.web import approvals  # manual gates: approve (API) and Slack's buttons

    app.register_blueprint(approvals.bp)
    app.register_blueprint(api.bp)
    from app.web import services  # rollback, known-bad versions

    app.register_blueprint(services.bp)
    from app.web import fleets  # releases over several applications in waves (docs/fleets.md)

    app.register_blueprint(fleets.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(audit.pages)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(dashboard.bp)
    from app.web import job_pages, jobs  # replay and backtest jobs (issue #11)

    app.register_blueprint(jobs.bp)
    app.register_blueprint(job_pages.bp)

    @app.before_request
    def _reads_need_a_token():
        """GETs need a read token (or a dashboard session) unless they are open (health, login);
        POSTs authenticate in their handlers (steering: operator role; receivers: token or signature)."""
        if request.method not in auth.READ_METHODS or request.endpoint in (None, *auth.OPEN_ENDPOINTS):
            return None
        if request.endpoint in dashboard.PAGES | job_pages.PAGES | audit.PAGES and not auth.may_read():
            return redirect(dashboard.login_url(request.full_path), 303)
        auth.require_read()
        return None

    from app.web import limits

    limits.install(app)  # after the blueprints: it wraps their login and intake views

    if auth.public_reads():
        log.warning(
            "SLUICE_PUBLIC_READS is on: anyone who can reach this server can read the API, the dashboard, "
            "/metrics and /openapi.json, with no credentials"
        )
    elif not any(auth.tokens(auth.READ_ENVS)):
        log.warning("every read is refused (401) until SLUICE_READ_TOKEN, or SLUICE_API_TOKEN, is set")
    return app
