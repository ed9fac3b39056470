"""Who may do what: roles, shared and per-person tokens, signed deploy notifications, dashboard sessions.

Roles (docs/security.md has the table):
- `intake` announces deploys (`POST /hooks/deploy`, the Argo receivers) and nothing else: not even
  `force` a known-bad version, nor read.
- `read` reads: the API's GETs, the dashboard, `/metrics`, `/openapi.json`, the audit log.
- `operator` reads, announces and steers: pause/resume/promote/abort, approve, roll back, force.
- `admin` all of that, and administers: clear known-bad versions, run the doctor.

Tokens: shared ones from the environment (`SLUICE_INTAKE_TOKEN` intake, `SLUICE_READ_TOKEN` read,
`SLUICE_API_TOKEN` admin), and per-person ones (`sluice token create --name alice --role operator`),
stored hashed with the person's name (app/store/people.py). What a person does is recorded under
their name; what a shared token does under the token's label, with the name the caller typed, if
any, after it (`api:alice`): a claim, not a proof.
`SLUICE_PUBLIC_READS=1` makes reads open to anyone who can reach the port (logged at start).

The dashboard logs in once per browser session: `POST /login` with a read-capable token sets an
HttpOnly, SameSite=Strict cookie holding an expiry and an HMAC keyed with the token (or, for a
person, with the stored hash of their token, and their name), so it cannot be turned back into the
token, and changing or revoking the token ends every session. The cookie only reads.

Every comparison of shared tokens is constant-time, and every configured token is compared.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass

from flask import g, request

from app.context import get_context
from app.core.webhook_signing import SignatureError, verify
from app.web import limits
from app.web.errors import ApiError

ROLES = ("intake", "read", "operator", "admin")
PERMITS = {
    "intake": frozenset({"announce"}),
    "read": frozenset({"read"}),
    "operator": frozenset({"read", "announce", "steer"}),
    "admin": frozenset({"read", "announce", "steer", "admin"}),
    "none": frozenset(),  # a refused caller, as the audit log records them
}
WHAT = {"announce": "announcing deploys", "read": "reading", "steer": "steering releases", "admin": "administering"}
# The shared token that fits each permission, named in 401s (a person's token of the role works too).
HINT = {
    "announce": "SLUICE_INTAKE_TOKEN",
    "read": "SLUICE_READ_TOKEN",
    "steer": "SLUICE_API_TOKEN",
    "admin": "SLUICE_API_TOKEN",
}
SHARED = (
    ("SLUICE_API_TOKEN", "admin", "api"),
    ("SLUICE_READ_TOKEN", "read", "read"),
    ("SLUICE_INTAKE_TOKEN", "intake", "intake"),
)
READ_ENVS = ("SLUICE_READ_TOKEN", "SLUICE_API_TOKEN")
SESSION_COOKIE = "sluice_session"
SESSION_SECONDS = 12 * 3600
_SESSION_CONTEXT = b"sluice-dashboard-session-v1|"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
REPLAY_SOURCE = "deploy-webhook-id"  # the once-only record of signed notifications' ids
DEPRECATED_SIGNATURE = "X-Sluice-Signature"

# Reads that stay open: health for probes, the login page, the dashboard's static files. The
# receivers and steering are POSTs and authenticate in their handlers (token or signature).
OPEN_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "dashboard.static", "dashboard.login"})
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Caller:
    name: str  # the person's name, or the shared token's label
    role: str
    shared: bool = False

    def may(self, permission: str) -> bool:
        return permission in PERMITS[self.role]

    def actor(self, typed: str | None = None) -> str:
        """The name recorded on what the caller does: a person's own; for a shared token its label,
        with the name the caller typed after it."""
        if self.shared and typed:
            return f"{self.name}:{typed}"
        return self.name


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


def identify(token: str) -> Caller | None:
    """Whose token this is: a shared one from the environment, else a person's (looked up by hash)."""
    found: Caller | None = None
    for env, role, label in SHARED:  # every shared token compared, constant-time
        value = os.environ.get(env, "")
        if value and hmac.compare_digest(token.encode("utf-8", "replace"), value.encode()) and found is None:
            found = Caller(label, role, shared=True)
    if found is not None:
        return found
    person = get_context().store.people.lookup(token)
    return Caller(person["name"], person["role"]) if person and person.get("role") in ROLES else None


def caller() -> Caller | None:
    """The request's bearer token's owner (once per request); None without a bearer token."""
    if "sluice_caller" not in g:
        given = bearer()
        g.sluice_caller = identify(given) if given is not None else None
        g.sluice_bearer = given is not None
    return g.sluice_caller


def roles_for(permission: str) -> str:
    return " or ".join(r for r in ROLES if permission in PERMITS[r])


def require(permission: str) -> Caller:
    """The caller, if their token's role permits `permission`; else 401 (no or unknown token) or 403."""
    who = caller()
    if who is None:
        if not g.sluice_bearer:
            raise ApiError(
                401,
                f"missing bearer token: {WHAT[permission]} needs `Authorization: Bearer <token>`, a token with "
                f"the {roles_for(permission)} role (a person's from `sluice token create`, or {HINT[permission]})",
                headers=_CHALLENGE,
            )
        raise ApiError(401, "wrong bearer token", headers=_CHALLENGE)
    if not who.may(permission):
        raise ApiError(
            403,
            f"{WHAT[permission]} needs the {roles_for(permission)} role; this token ({who.name}) has the "
            f"{who.role} role: ask an admin for a token with `sluice token create --role ...`",
        )
    return who


def require_token() -> Caller:
    """Steering: the operator or admin role."""
    return require("steer")


def require_admin() -> Caller:
    return require("admin")


def require_intake_token() -> Caller:
    """Deploy notifications: any role that announces."""
    return require("announce")


def require_token_or_signature(body: bytes) -> Caller:
    """Deploy notifications: a token that announces, or a Standard Webhooks signature with
    SLUICE_DEPLOY_SECRET (for senders that should not hold a token). A signature is the intake role."""
    signed = request.headers.get("webhook-signature")
    old = request.headers.get(DEPRECATED_SIGNATURE)
    if signed is None and old is None:
        return require_intake_token()
    secret = os.environ.get("SLUICE_DEPLOY_SECRET")
    if not secret:
        raise ApiError(401, "signed notifications are not enabled: set SLUICE_DEPLOY_SECRET on the server")
    if signed is None:
        return _deprecated_signature(secret, old or "", body)
    msg_id = request.headers.get("webhook-id")
    try:
        verify(secret, msg_id, request.headers.get("webhook-timestamp"), signed, body, now=time.time())
    except SignatureError as exc:
        raise ApiError(401, str(exc)) from None
    assert msg_id is not None
    # Within the tolerance, an id is accepted once: a captured request sent again is refused.
    # The receivers' rate limit is counted with the claim (app/web/limits.py): one round trip for both.
    if get_context().store.claim_event(REPLAY_SOURCE, msg_id, "seen", 2 * 300 + 60, count=limits.pending()) is not None:
        raise ApiError(
            401, f"webhook-id {msg_id[:64]!r} was already received: a replay (send a new id per notification)"
        )
    return Caller("signed notification", "intake", shared=True)


def _deprecated_signature(secret: str, header: str, body: bytes) -> Caller:
    """`X-Sluice-Signature: sha256=<hex HMAC of the body>`: deprecated (no timestamp, so replayable),
    kept for one release; only when SLUICE_ALLOW_UNTIMED_SIGNATURE=1."""
    if os.environ.get("SLUICE_ALLOW_UNTIMED_SIGNATURE", "").strip().lower() not in ("1", "true", "yes", "on"):
        raise ApiError(
            401,
            "X-Sluice-Signature is deprecated (it carries no timestamp, so it can be replayed): sign with the "
            "webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks)",
        )
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode("utf-8", "replace"), expected.encode()):
        raise ApiError(401, "signature does not match the body (HMAC-SHA256 with SLUICE_DEPLOY_SECRET)")
    return Caller("signed notification", "intake", shared=True)


# --- reads and dashboard sessions ---------------------------------------------------------------------


def _session_mac(key: str, expires: int, name: str = "") -> str:
    context = _SESSION_CONTEXT + (name.encode() + b"|" if name else b"") + str(expires).encode()
    return hmac.new(key.encode(), context, hashlib.sha256).hexdigest()


def check_login(token: str) -> bool:
    """A token typed into the login form: one whose role reads."""
    who = identify(token)
    return who is not None and who.may("read")


def new_session(token: str, now: float | None = None) -> str:
    """The cookie's value for a session opened with `token` (which check_login accepted): a shared
    token's is `<expires>.<mac>`, a person's `<expires>.<name>.<mac>` keyed with their token's hash."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    if _matches(token, tokens(READ_ENVS)):
        return f"{expires}.{_session_mac(token, expires)}"
    person = get_context().store.people.lookup(token) or {}
    name = str(person.get("name", ""))
    return f"{expires}.{name}.{_session_mac(hashlib.sha256(token.encode()).hexdigest(), expires, name)}"


def valid_session(value: str | None, now: float | None = None) -> bool:
    if not value:
        return False
    expires_text, _, rest = value.partition(".")
    name, _, mac = rest.rpartition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or len(mac) != 64:
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    if name:
        digest = get_context().store.people.digest_of(name)
        person = get_context().store.people.by_digest(digest) if digest else None
        if not person or not PERMITS.get(str(person.get("role")), frozenset()) & {"read"}:
            return False
        return hmac.compare_digest(mac.encode("utf-8", "replace"), _session_mac(digest or "", expires, name).encode())
    found = False
    for token in tokens(READ_ENVS):
        found |= hmac.compare_digest(mac.encode("utf-8", "replace"), _session_mac(token, expires).encode())
    return found


def may_read() -> bool:
    """Reads are public, or the request carries a read-capable bearer token or a dashboard session."""
    if public_reads():
        return True
    if bearer() is not None:
        who = caller()
        return who is not None and who.may("read")
    return valid_session(request.cookies.get(SESSION_COOKIE))


def require_read() -> None:
    if may_read():
        return
    if bearer() is None or (caller() is None and not tokens(READ_ENVS)):
        if not tokens(READ_ENVS):
            raise ApiError(
                401,
                "reads need a token with the read, operator or admin role (`sluice token create`), or "
                "SLUICE_READ_TOKEN set where Sluice runs, or SLUICE_PUBLIC_READS=1 to make reads public",
                headers=_CHALLENGE,
            )
        raise ApiError(
            401,
            "reads need a token: send `Authorization: Bearer <token>` (read, operator or admin role)",
            headers=_CHALLENGE,
        )
    require("read")  # 401 for an unknown token, 403 for one whose role does not read
