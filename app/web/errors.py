"""JSON errors everywhere: `{"error": "...", "detail": ...}` with a 4xx that says what to fix."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.config_file.loader import ConfigError
from app.core.announcements import PayloadError
from app.store import UNREACHABLE

log = logging.getLogger("sluice.web")


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers or {}


def error_response(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None):
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]} for e in exc.errors()]


_HINTS = {
    404: "no such endpoint; see GET /openapi.json",
    405: "method not allowed for this endpoint",
    413: "request body too large (limit 256 KiB)",
    414: "request line too long (limit 4 KiB)",
}
# While Redis is unreachable nothing can be stored: senders are told to come back (CircleCI's orb
# and most webhook senders retry a 503 that carries Retry-After), never a 500 nor a 2xx.
RETRY_AFTER_SECONDS = 5
MAX_REQUEST_LINE = 4094  # gunicorn's default limit_request_line; the gunicorn config lets Flask answer


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.detail, exc.headers)

    @app.errorhandler(PayloadError)
    def _payload_error(exc: PayloadError):
        return error_response(400, str(exc), validation_detail(exc.validation) if exc.validation else None)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(set(exc.valid_methods) | {"OPTIONS"}))
        return error_response(status, _HINTS.get(status, exc.description or exc.name), headers=headers)

    @app.before_request
    def _request_line_limit():
        """Long request lines get a JSON 414 (gunicorn is configured to let them through to here)."""
        line = len(request.method) + len(request.full_path) + 10
        if len(request.environ.get("RAW_URI") or "") > MAX_REQUEST_LINE or line > MAX_REQUEST_LINE:
            return error_response(414, _HINTS[414])
        return None

    @app.errorhandler(ConfigError)
    def _config_error(exc: ConfigError):
        log.error("configuration error: %s", exc)
        return error_response(
            503,
            "Sluice's configuration is invalid; run `sluice validate` on it",
            [f"{w}: {m}" for w, m in exc.problems],
        )

    def _unreachable(exc: Exception):
        log.warning("Redis unreachable: %s: %s", type(exc).__name__, str(exc).split("\n")[0][:200])
        return error_response(
            503,
            "Sluice's store (Redis) is unreachable; nothing was stored, retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for unreachable in UNREACHABLE:
        app.register_error_handler(unreachable, _unreachable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal error; the server log has the details")
