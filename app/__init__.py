"""Sluice, a release agent. `create_app()` is the web process's entry point (gunicorn 'app:create_app()')."""

from app.web import create_app

__all__ = ["create_app"]
