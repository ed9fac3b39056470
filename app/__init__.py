"""Sluice, a release agent. `create_app()` is the web process's entry point (gunicorn 'app:create_app()')."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app() -> Flask:
    # Imported here so that `import app.<anything>` does not load the whole web app.
    from app.web import create_app as build

    return build()
