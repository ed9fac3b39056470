"""Standard Webhooks signatures (https://www.standardwebhooks.com), in and out.

Headers: `webhook-id` (stable across retries), `webhook-timestamp` (Unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` (space-separated when
several secrets sign, during a rotation). A secret written `whsec_<base64>` is the spec's form (the
key is the decoded bytes); any other secret is used as its UTF-8 bytes. Receivers can verify with an
off-the-shelf Standard Webhooks library; Sluice verifies signed deploy notifications with `verify`.

The signed timestamp bounds replays to the tolerance; within it, a receiver refuses an id it has
already seen (Sluice does for /hooks/deploy).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TOLERANCE_SECONDS = 300
ID_MAX = 256


class SignatureError(ValueError):
    """Why a signed request was refused (shown to the sender; says what to fix)."""


def key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: use it as written
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureError unless one of the `v1,` signatures matches and the timestamp is recent."""
    if not msg_id or not timestamp or not signatures:
        raise SignatureError(
            "a signed notification needs the headers webhook-id, webhook-timestamp and webhook-signature"
        )
    if len(msg_id) > ID_MAX or not msg_id.isprintable():
        raise SignatureError(f"webhook-id must be at most {ID_MAX} printable characters")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("webhook-timestamp must be Unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(
            f"webhook-timestamp is more than {tolerance:g}s from the server's clock: a replay, or a clock to fix"
        )
    expected = signature(secret, msg_id, int(timestamp), body).encode()
    found = False
    for given in signatures.split():  # constant-time against each one offered
        found |= hmac.compare_digest(given.encode("utf-8", "replace"), expected)
    if not found:
        raise SignatureError("webhook-signature does not match (HMAC-SHA256 of '<id>.<timestamp>.<body>')")
