"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.context import get_context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up (no dependencies checked: a Redis outage should not restart web pods)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready to serve: configuration loads and Redis answers."""
    problems = {}
    try:
        ctx = get_context()
        ctx.store.ping()
    except Exception as exc:  # noqa: BLE001 - report any dependency failure as not ready
        problems["dependencies"] = type(exc).__name__ + ": " + str(exc).split("\n")[0][:200]
    if problems:
        return jsonify({"status": "not ready", "detail": problems}), 503
    return jsonify({"status": "ready"})
