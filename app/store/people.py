"""People's API tokens and the audit log, in Redis (`Store.people`).

A token is a high-entropy random string shown once when it is created; Redis keeps only its SHA-256
(a fast hash is enough for 256 random bits: there is nothing to guess), with the person's name and
role. So a copy of Redis gives no token, and a lookup is a single GET by digest.

The audit log is a capped list (newest first): who did what to which release or service, and when.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import redis

from app.store import keys

AUDIT_MAX = 10_000  # entries kept; the oldest fall off
TOKEN_PREFIX = "sluice_"  # noqa: S105 - what every token starts with, not a token


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PeopleStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def create_token(self, name: str, role: str, now: float | None = None) -> str:
        """A new token for `name` (replacing the person's earlier one, which stops working). Returns
        the token: the only time it exists outside the caller's hands."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = {"name": name, "role": role, "created_at": now if now is not None else time.time()}
        old = self.r.hget(keys.PEOPLE, name)
        pipe = self.r.pipeline(transaction=True)
        if old:
            pipe.delete(keys.person_token(_text(old)))
        pipe.set(keys.person_token(digest(token)), json.dumps(record, sort_keys=True))
        pipe.hset(keys.PEOPLE, name, digest(token))
        pipe.execute()
        return token

    def revoke(self, name: str) -> bool:
        old = self.r.hget(keys.PEOPLE, name)
        if not old:
            return False
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(keys.person_token(_text(old)))
        pipe.hdel(keys.PEOPLE, name)
        pipe.execute()
        return True

    def lookup(self, token: str) -> dict[str, Any] | None:
        """The person a token belongs to ({name, role, created_at}), or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        raw = self.r.get(keys.person_token(digest(token)))
        return json.loads(raw) if raw else None

    def digest_of(self, name: str) -> str | None:
        d = self.r.hget(keys.PEOPLE, name)
        return _text(d) if d else None

    def by_digest(self, token_digest: str) -> dict[str, Any] | None:
        raw = self.r.get(keys.person_token(token_digest))
        return json.loads(raw) if raw else None

    def people(self) -> list[dict[str, Any]]:
        names = sorted(_text(n) for n in self.r.hkeys(keys.PEOPLE))
        found = []
        for name in names:
            d = self.r.hget(keys.PEOPLE, name)
            raw = self.r.get(keys.person_token(_text(d))) if d else None
            if raw:
                found.append(json.loads(raw))
        return found

    # --- audit ------------------------------------------------------------------------------------

    def audit(self, entry: dict[str, Any]) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.lpush(keys.AUDIT, json.dumps(entry, sort_keys=True))
        pipe.ltrim(keys.AUDIT, 0, AUDIT_MAX - 1)
        pipe.execute()

    def audit_log(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.r.lrange(keys.AUDIT, offset, offset + limit - 1)]
