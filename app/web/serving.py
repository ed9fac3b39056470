"""Gunicorn's configuration for the web process: `gunicorn -c app/web/serving.py 'app:create_app()'`.

Loaded by path, not as `python:app.web.serving`: importing the package would load the app (and
urllib3's ssl) in the master, before gevent patches the workers.

The receiver faces the internet (CircleCI's webhooks come from CircleCI's cloud), so a slow client
must not be able to hold what other requests need. With threads, each connection holds a thread
while its headers trickle in: 8 slow connections took the former 2 workers x 4 threads. gevent's
worker gives each connection a greenlet instead (a few KB), and gunicorn reads every request's line
and headers under a `keepalive`-second deadline, after which the connection is dropped: 200 slow
connections cost 200 greenlets for at most 5 s each, and /healthz and signed webhooks are answered
meanwhile (benchmarks/slowloris.py, numbers in benchmarks/RESULTS.md). `worker_connections` caps
the connections one worker holds. A buffering proxy in front (nginx, an ingress) is welcome but
not needed.

Errors gunicorn answers itself (a request line or header over the limits, a malformed request)
are JSON like the application's own: `{"error": "..."}`. The request line limit is raised to
gunicorn's maximum so that Flask answers most over-long URLs (414) itself.

Settings come from the environment where an operator may want to change them:
WEB_CONCURRENCY (worker processes, default 2), SLUICE_WORKER_CONNECTIONS (default 1000).
"""

from __future__ import annotations

import json
import os
from typing import Any

from gunicorn import util

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("SLUICE_WORKER_CONNECTIONS", "1000"))
# Seconds a client has to send a request's line and headers (and an idle kept-alive connection
# stays open): gevent's worker reads them under this deadline.
keepalive = 5
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 20
limit_request_line = 8190  # gunicorn's maximum; Flask answers 414 JSON past 4094 (app/web/errors.py)
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
control_socket_disable = True  # gunicorn's control socket: not needed, and one less thing listening


def _json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answers (400, 414, 431...) as JSON rather than its HTML page."""
    body = json.dumps({"error": f"{reason.lower()}: {mesg}" if mesg else reason.lower()}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = _json_error


def on_starting(server: Any) -> None:
    """Before any worker: refuse to serve with a guessable token (app/core/token_strength.py)."""
    from app.core.token_strength import weak_tokens  # pure: loads neither Flask nor urllib3 in the master

    problems = weak_tokens(os.environ)
    if problems:
        for problem in problems:
            server.log.error("refusing to start: %s", problem)
        raise SystemExit(2)
