"""The web process: webhook receivers, the REST API, health endpoints."""

from __future__ import annotations

from flask import Flask

from app.logs import configure_logging

MAX_BODY_BYTES = 256 * 1024


def create_app() -> Flask:
    configure_logging()
    app = Flask("sluice")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from app.web import api, dashboard, deploy, errors, health, openapi

    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(deploy.bp)
    from app.web import argo, circleci  # CI / GitOps receivers (issue #4)

    app.register_blueprint(circleci.bp)
    app.register_blueprint(argo.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(dashboard.bp)
    return app
