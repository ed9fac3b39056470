"""The baselines for the intake benchmark: a Flask handler that only answers 202, as cheaply as it can,
and the floor for an intake that records anything: the same plus one EVALSHA per request."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, jsonify

# A claim, as a receiver makes.
_CLAIM = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', 60, 'GET')"


def _accepting(name: str, effect: Callable[[], object] | None = None) -> Flask:
    """Answers /healthz, and 202 to the receivers' paths after `effect` (if any)."""
    app = Flask(name)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/hooks/deploy")
    @app.post("/hooks/circleci")
    def accept():
        if effect is not None:
            effect()
        return jsonify({"accepted": True}), 202

    return app


def create_app() -> Flask:
    return _accepting("bare")


def create_floor_app() -> Flask:
    """Bare Flask plus one EVALSHA per request, on Sluice's own Redis client (app/store/connection.py:
    the same timeouts, retries and pool)."""
    import os

    from app.store import connect

    client = connect(os.environ["REDIS_URL"])  # connects at the first request, in the worker
    claim = client.register_script(_CLAIM)
    return _accepting("floor", lambda: claim(keys=["bench:floor"], args=["seen"]))
