"""Structured JSON log lines; the release id rides on every line of a release's work.

The tick, the hook delivery and the steering code run a release's work inside
`release_context(release_id)`; a filter copies that id onto every record logged meanwhile,
whichever logger wrote it. Secrets never reach the output: known secret values from the
environment (the API token, the deploy secret, hook secrets) and anything shaped like
`Authorization: Bearer ...` or `token=...` are blanked by the formatter, the last step
before a line is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from app.core.redact import redact

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_release_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sluice_release_id", default=None)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
# Environment variables whose values are secrets: the API token, the deploy secret, and every
# `*_SECRET`, `*_TOKEN`, `*_KEY`, `*_PASSWORD`, `*_WEBHOOK_URL` (hooks name theirs with `*_env`).
# Webhook URLs (Slack's) carry their secret in the path, so they count too.
_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSWORD|_KEY|WEBHOOK_URL)$")


@contextmanager
def release_context(release_id: str | None) -> Iterator[None]:
    """Tag every log line written inside this block with the release id."""
    token = _release_id.set(release_id)
    try:
        yield
    finally:
        _release_id.reset(token)


def current_release_id() -> str | None:
    return _release_id.get()


class ReleaseFilter(logging.Filter):
    """Copies the current release id onto the record (unless the caller already set one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = _release_id.get()
        if rid is not None and not getattr(record, "release_id", None):
            record.release_id = rid
        return True


def _env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 4]


def scrub(text: str) -> str:
    """Remove secrets from a log line."""
    return redact(_BEARER.sub(r"\1 [redacted]", text), _env_secrets())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "release_id", None) or _release_id.get()
        if rid:
            data["release_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(data, default=str))


def configure_logging() -> None:
    """Once per process: JSON to stderr at SLUICE_LOG_LEVEL (default info)."""
    root = logging.getLogger()
    level = os.environ.get("SLUICE_LOG_LEVEL", "INFO").upper()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ReleaseFilter())
    root.handlers = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
