"""Pages of releases read from a listing index (keys.release_index): newest first, by offset or cursor.

An index is a sorted set id -> created_at, so a page costs a ZCARD, one or two ZREVRANGE(BYSCORE)
and one MGET, whatever the number of releases. A cursor names the last release a page showed
(its score and id), so the next page starts right after it even while new releases arrive (an
offset would shift by the number of new ones).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any

import redis

from app.core.models import Release
from app.store import keys


class BadCursor(ValueError):
    """A cursor that no page of this listing handed out."""


@dataclass
class ReleasePage:
    releases: list[Release] = field(default_factory=list)
    total: int = 0  # releases matching the filters
    next_cursor: str | None = None  # None: this is the last page


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def encode_cursor(score: float, release_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{release_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(score, release id); BadCursor if it is not one this module wrote."""
    bad = BadCursor("`cursor` is not valid: pass the `next_cursor` of the previous page unchanged")
    if not cursor or len(cursor) > 200:
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    raw_score, sep, release_id = text.partition("|")
    if not sep or not release_id.startswith("r-") or not release_id.isprintable():
        raise bad
    try:
        score = float(raw_score)
    except ValueError:
        raise bad from None
    if not math.isfinite(score):
        raise bad
    return score, release_id


def page(r: redis.Redis, index: str, limit: int, offset: int = 0, cursor: str | None = None) -> ReleasePage:
    """Up to `limit` releases of `index`, newest first: after `cursor` if given, else from `offset`."""
    total = int(r.zcard(index))
    if cursor is None:
        # One more than the page: whether there is a next page.
        raw: Any = r.zrevrange(index, offset, offset + limit, withscores=True)
        entries = [(_text(m), float(sc)) for m, sc in raw]
    else:
        entries = _after(r, index, *decode_cursor(cursor), limit + 1)
    shown, more = entries[:limit], len(entries) > limit
    raws = r.mget([keys.release(rid) for rid, _ in shown]) if shown else []
    # A release deleted between the index read and the MGET (retention) is left out of the page.
    releases = [Release.model_validate_json(raw) for raw in raws if raw]
    next_cursor = encode_cursor(shown[-1][1], shown[-1][0]) if more and shown else None
    return ReleasePage(releases=releases, total=total, next_cursor=next_cursor)


def _after(r: redis.Redis, index: str, score: float, last_id: str, want: int) -> list[tuple[str, float]]:
    """The `want` entries after (score, last_id) in newest-first order. Members of equal score come
    in reverse id order, so those with an id >= last_id were on earlier pages. Ties are rare (two
    releases created in the same microsecond), so this is one command almost always."""
    out: list[tuple[str, float]] = []
    start = 0
    while len(out) < want:
        chunk: Any = r.zrevrangebyscore(index, score, "-inf", start=start, num=want, withscores=True)
        for m, raw_score in chunk:
            rid, sc = _text(m), float(raw_score)
            if sc == score and rid >= last_id:
                continue
            out.append((rid, sc))
        if len(chunk) < want:
            break
        start += len(chunk)
    return out[:want]
