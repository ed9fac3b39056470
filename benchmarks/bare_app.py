"""The baseline for the intake benchmark: a Flask handler that only answers 202, as cheaply as it can."""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask("bare")

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/hooks/deploy")
    @app.post("/hooks/circleci")
    def accept():
        return jsonify({"accepted": True}), 202

    return app
