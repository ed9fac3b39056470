"""A deadline on the whole request: the body must be in within the headers' deadline.

gunicorn's gevent worker reads a request's line and headers under its `keepalive` deadline
(app/web/serving.py), but the body is read by the application, when it asks, with no deadline: a
client that sent its headers and then a byte a second held a connection for as long as it liked,
and `worker_connections` of them left no room for /healthz (issue 20: 25 such clients, 40 s).

This WSGI middleware gives each request's body BODY_DEADLINE seconds from when its headers were
read. Under gevent (the web process as served) every read of `wsgi.input` runs under a
`gevent.Timeout` for the time left, so a stalled read is cut off too, not only the next one. A
body not in by then is answered 408 (JSON) and the connection's reading side is shut, so gunicorn
closes it instead of waiting for the rest. Without gevent (the test client, a plain WSGI server)
the deadline is checked between reads only.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from app.web.errors import error_response

BODY_DEADLINE = 5.0  # seconds; the same as gunicorn's header deadline (`keepalive` in serving.py)


class BodyTooSlow(Exception):  # noqa: N818 - reads as what happened
    """The body was not in within BODY_DEADLINE. Not an OSError: werkzeug would call that a disconnect."""


def _gevent_timeout() -> Any:
    """gevent.Timeout when this process runs under gevent with sockets patched, else None."""
    gevent = sys.modules.get("gevent")
    if gevent is None:
        return None
    from gevent import monkey

    return gevent.Timeout if monkey.is_module_patched("socket") else None


class _DeadlineInput:
    """`wsgi.input` whose reads end by the deadline."""

    def __init__(self, stream: Any, deadline: float, timeout_class: Any, sock: Any):
        self._stream, self._deadline, self._timeout, self._sock = stream, deadline, timeout_class, sock

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        left = self._deadline - time.monotonic()
        try:
            if left <= 0:
                raise BodyTooSlow()
            if self._timeout is None:
                return method(*args)
            with self._timeout(left, BodyTooSlow()):
                return method(*args)
        except BodyTooSlow:
            self._stop_reading()
            raise

    def _stop_reading(self) -> None:
        # The rest of the body is still on its way: gunicorn would read (and discard) it before the
        # next request. Shut the reading side so it finds the end at once and closes.
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed by the client
                self._sock.shutdown(socket.SHUT_RD)

    def read(self, *args: Any) -> bytes:
        return self._call(self._stream.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._call(self._stream.readline, *args)

    def readlines(self, *args: Any) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class BodyDeadline:
    """WSGI middleware: each request's `wsgi.input` must be read to its end within `seconds`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], seconds: float = BODY_DEADLINE):
        self.app, self.seconds = app, seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        if stream is not None:
            deadline = time.monotonic() + self.seconds
            environ["wsgi.input"] = _DeadlineInput(stream, deadline, _gevent_timeout(), environ.get("gunicorn.socket"))
        return self.app(environ, start_response)


def install(app: Flask, seconds: float = BODY_DEADLINE) -> None:
    app.wsgi_app = BodyDeadline(app.wsgi_app, seconds)  # type: ignore[method-assign]

    @app.errorhandler(BodyTooSlow)
    def _too_slow(_exc: BodyTooSlow) -> Any:
        message = f"the request body did not arrive within {seconds:.0f} s of its headers; send it all at once"
        return error_response(408, message)
