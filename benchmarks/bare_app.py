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


# The floor for an intake that records anything: bare Flask plus one EVALSHA per request, on Sluice's own
# Redis client (app/store/connection.py: the same timeouts, retries and pool). A claim, as a receiver makes.
_CLAIM = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', 60, 'GET')"


def create_floor_app() -> Flask:
    import os

    from app.store import connect

    app = Flask("floor")
    client = connect(os.environ["REDIS_URL"])  # connects at the first request, in the worker
    claim = client.register_script(_CLAIM)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/hooks/deploy")
    @app.post("/hooks/circleci")
    def accept():
        claim(keys=["bench:floor"], args=["seen"])
        return jsonify({"accepted": True}), 202

    return app
