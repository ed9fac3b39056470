"""Who may do what: tokens for reads, intake and everything; HMAC for signed notifications.

- `SLUICE_API_TOKEN` can do everything: steer, intake, read.
- `SLUICE_READ_TOKEN` reads: the API's GETs, the dashboard, `/metrics`, `/openapi.json`.
- `SLUICE_INTAKE_TOKEN` only announces deploys (`POST /hooks/deploy`, the Argo receivers): a
  notifier such as Argo's need not hold the admin token.
- `SLUICE_PUBLIC_READS=1` makes reads open to anyone who can reach the port (logged at start).

The dashboard logs in once per browser session: `POST /login` with a read (or API) token sets an
HttpOnly, SameSite=Strict cookie. The cookie holds not the token but an expiry and an HMAC of it
keyed with the token, so it cannot be turned back into the token, and changing the token ends
every session. The cookie only reads: steering still needs the API token as a bearer header.

Every comparison is constant-time, and every configured token is compared (no early exit that
would tell which one matched).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from flask import request

from app.web.errors import ApiError

READ_ENVS = ("SLUICE_READ_TOKEN", "SLUICE_API_TOKEN")
INTAKE_ENVS = ("SLUICE_INTAKE_TOKEN", "SLUICE_API_TOKEN")
SESSION_COOKIE = "sluice_session"
SESSION_SECONDS = 12 * 3600
_SESSION_CONTEXT = b"sluice-dashboard-session-v1|"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Reads that stay open: health for probes, the login page, the dashboard's static files. The
# receivers and steering are POSTs and authenticate in their handlers (token or signature).
OPEN_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "dashboard.static", "dashboard.login"})
READ_METHODS = frozenset({"GET", "HEAD"})


def tokens(envs: tuple[str, ...]) -> list[str]:
    return [t for t in (os.environ.get(e, "") for e in envs) if t]


def _matches(given: str, expected: list[str]) -> bool:
    """Constant-time against each configured token, all of them compared."""
    found = False
    for token in expected:
        found |= hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())
    return found


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def public_reads() -> bool:
    return os.environ.get("SLUICE_PUBLIC_READS", "").strip().lower() in ("1", "true", "yes", "on")


def _require(envs: tuple[str, ...], what: str) -> None:
    expected = tokens(envs)
    if not expected:
        names = " or ".join(envs)
        raise ApiError(401, f"this server has no token for {what}: set {names} where Sluice runs")
    given = bearer()
    if given is None:
        names = " or ".join(envs)
        raise ApiError(401, f"missing bearer token: send `Authorization: Bearer <{names}>`", headers=_CHALLENGE)
    if not _matches(given, expected):
        raise ApiError(401, "wrong bearer token", headers=_CHALLENGE)


def require_token() -> None:
    """Steering: Authorization: Bearer $SLUICE_API_TOKEN (no other token)."""
    _require(("SLUICE_API_TOKEN",), "steering")


def require_intake_token() -> None:
    """Deploy notifications: the intake token or the API token."""
    _require(INTAKE_ENVS, "deploy notifications")


def require_token_or_signature(body: bytes) -> None:
    """Deploy notifications: the intake or API token, or `X-Sluice-Signature: sha256=<hex HMAC of the
    body>` with SLUICE_DEPLOY_SECRET (for senders that should not hold a token)."""
    signature = request.headers.get("X-Sluice-Signature")
    secret = os.environ.get("SLUICE_DEPLOY_SECRET")
    if signature is not None:
        if not secret:
            raise ApiError(401, "signed notifications are not enabled: set SLUICE_DEPLOY_SECRET on the server")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().encode("utf-8", "replace"), expected.encode()):
            raise ApiError(401, "signature does not match the body (HMAC-SHA256 with SLUICE_DEPLOY_SECRET)")
        return
    require_intake_token()


# --- reads ------------------------------------------------------------------------------------------


def _session_mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), _SESSION_CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()


def check_login(token: str) -> bool:
    """A token typed into the login form: a read token or the API token."""
    expected = tokens(READ_ENVS)
    return bool(expected) and _matches(token, expected)


def new_session(token: str, now: float | None = None) -> str:
    """The cookie's value for a session opened with `token` (which check_login accepted)."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{expires}.{_session_mac(token, expires)}"


def valid_session(value: str | None, now: float | None = None) -> bool:
    if not value:
        return False
    expires_text, _, mac = value.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or len(mac) != 64:
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    found = False
    for token in tokens(READ_ENVS):
        found |= hmac.compare_digest(mac.encode("utf-8", "replace"), _session_mac(token, expires).encode())
    return found


def may_read() -> bool:
    """Reads are public, or the request carries a read/API bearer token or a dashboard session."""
    if public_reads():
        return True
    given = bearer()
    if given is not None:
        return _matches(given, tokens(READ_ENVS))
    return valid_session(request.cookies.get(SESSION_COOKIE))


def require_read() -> None:
    if may_read():
        return
    if not tokens(READ_ENVS):
        raise ApiError(
            401,
            "this server has no read token: set SLUICE_READ_TOKEN (or SLUICE_API_TOKEN) where Sluice runs, "
            "or SLUICE_PUBLIC_READS=1 to make reads public",
            headers=_CHALLENGE,
        )
    if bearer() is None:
        raise ApiError(
            401,
            "reads need a token: send `Authorization: Bearer <SLUICE_READ_TOKEN>` (or the API token)",
            headers=_CHALLENGE,
        )
    raise ApiError(401, "wrong bearer token", headers=_CHALLENGE)
