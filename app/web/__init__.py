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

    from app.web import api, deploy, errors, health

    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(deploy.bp)
    app.register_blueprint(api.bp)
    return app
