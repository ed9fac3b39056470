"""The dashboard in a real browser for the browser tests: the Flask app on a local port and a
headless Chromium page that fails the test on a JavaScript error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.web import create_app

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def served_app() -> Iterator[str]:
    """create_app() (on the context already set) on 127.0.0.1, its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def browser_page(viewport: dict[str, int] | None = None, console_errors: bool = False) -> Iterator[object]:
    """A headless Chromium page; a page error (and, with `console_errors`, a console error) fails the test."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-system-packages.sh installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        pg = browser.new_page(viewport=viewport) if viewport else browser.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        if console_errors:
            pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        try:
            yield pg
        finally:
            browser.close()
        assert not errors, errors
