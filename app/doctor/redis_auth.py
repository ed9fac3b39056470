"""`sluice doctor`: does Redis answer someone who has no password?

Whoever can talk to Sluice's Redis can rewrite releases, steer traffic through the worker and fill
its queues, so outside one machine Redis must ask for a password (or an ACL user): deploy/ and the
compose file give it one from a Secret. Doctor opens its own connection with no credentials at all
and sends PING: an answer means anyone who reaches that address gets in. A loopback address (the
local demo's 127.0.0.1) or a Unix socket is reachable from this machine only, so there it is a pass.
Sentinel URLs are not probed here (the sentinels name the master; the Sentinel check covers them).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.store.auth_probe import answers_without_auth
from app.store.connection import is_sentinel, shown

NAME = "redis auth"
FIX = (
    "give Redis a password (`requirepass`, or an ACL user with `user sluice on >PASSWORD ~* +@all` and "
    "`user default off`) and put it in REDIS_URL (redis://:PASSWORD@host:6379/0, from a Secret); "
    "deploy/ and compose.yaml do this. If this Redis is only reachable from this machine, write its "
    "address as 127.0.0.1 in REDIS_URL"
)


def is_local(url: str) -> bool:
    """A Unix socket, or a loopback IP address (a name such as `localhost` is whatever DNS says)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


def check_redis_auth(url: str) -> list[tuple[str, str, str, str]]:
    """(name, status, detail, fix) findings, as app/doctor/checks.py's Finding takes them."""
    if is_sentinel(url):
        return []
    open_door = answers_without_auth(url)
    if open_door is None:
        return []
    if not open_door:
        return [(NAME, "pass", "Redis refuses a connection without a password", "")]
    if is_local(url):
        return [(NAME, "pass", f"no password, but {shown(url)} is reachable from this machine only", "")]
    return [
        (
            NAME,
            "warn",
            f"Redis at {shown(url)} answers anyone who reaches it, without a password: they could rewrite "
            "releases and fill the worker's queues",
            FIX,
        )
    ]
