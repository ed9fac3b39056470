"""Headers on every answer, and the trusted proxy in front (issue 20, item 12).

- Content-Security-Policy: scripts, styles, images and fetches from this server only; no inline
  script or style (the dashboard's are files under static/ and set styles through the DOM), no
  plugins, no <base>, forms post here only, and no framing (`frame-ancestors 'none'`, and
  X-Frame-Options DENY for browsers that predate it): clickjacking on Approve or Abort is out.
- X-Content-Type-Options nosniff: a JSON answer is never run as a script or page.
- Referrer-Policy same-origin: release ids in URLs do not leave for other sites.

SLUICE_TRUSTED_PROXY_HOPS (default 0: off): how many proxies in front of Sluice append to
X-Forwarded-For and set X-Forwarded-Proto (an ingress that terminates TLS: 1). With it, werkzeug's
ProxyFix takes the client's address and scheme from them, so the session cookie is Secure behind
TLS and rate limits count the real client. Without it, those headers are ignored: anyone can send them.
"""

from __future__ import annotations

import os

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HOPS_ENV = "SLUICE_TRUSTED_PROXY_HOPS"


def proxy_hops() -> int:
    value = os.environ.get(HOPS_ENV, "").strip() or "0"
    if not value.isdigit() or int(value) > 5:
        raise ValueError(
            f"{HOPS_ENV}={value!r} must be the number of proxies in front of Sluice that set X-Forwarded-For and "
            "X-Forwarded-Proto (0 to 5; 1 for a TLS-terminating ingress; 0, the default, ignores those headers)"
        )
    return int(value)


def install(app: Flask) -> None:
    hops = proxy_hops()
    if hops:
        # The client's address and scheme as the trusted proxies saw them; the Host header is left as sent.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        for name, value in HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp
