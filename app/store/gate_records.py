"""Gates' records in Redis (`Store.gates`): what each gate of a release answered, and approvals.

  release:<id>:gates       hash "<point>/<gate>" -> JSON of the gate's record (written by ticks)
  release:<id>:approvals   hash "<point>/<gate>" -> JSON {by, via, at} (HSETNX: the first approval wins)

An approval is written with its event in one script, so "approved by X" is recorded once, and a
second click reads who approved first.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from app.core.models import Event
from app.store import keys

# HSETNX the approval; when it is new, append its event. Returns nil (new) or the earlier approval.
_APPROVE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  return false
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""


def field(point: str, gate: str) -> str:
    return f"{point}/{gate}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GateStore:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._approve = client.register_script(_APPROVE)

    def records(self, release_id: str) -> dict[str, dict[str, Any]]:
        """Every gate record of the release, by "<point>/<gate>"."""
        raw = self.r.hgetall(keys.release_gates(release_id))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    def save(self, release_id: str, point: str, gate: str, record: dict[str, Any], event: Event | None = None) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(keys.release_gates(release_id), field(point, gate), json.dumps(record, sort_keys=True))
        if event is not None:
            pipe.rpush(keys.release_events(release_id), event.model_dump_json())
        pipe.execute()

    def approvals(self, release_id: str) -> dict[str, dict[str, Any]]:
        raw = self.r.hgetall(keys.release_approvals(release_id))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    def approve(self, release_id: str, point: str, gate: str, approval: dict[str, Any], event: Event) -> dict | None:
        """Record an approval and its event, once. None: recorded now; else the earlier approval."""
        earlier = self._approve(
            keys=[keys.release_approvals(release_id), keys.release_events(release_id)],
            args=[field(point, gate), json.dumps(approval, sort_keys=True), event.model_dump_json()],
        )
        return json.loads(earlier) if earlier else None

    def hurry_tick(self, release_id: str, seq: int, at: float) -> bool:
        """Bring the release's scheduled tick forward to `at` (an approval should not wait an interval).
        XX: only a tick still scheduled, so a tick that already moved on leaves no stale member."""
        return bool(self.r.zadd(keys.DUE, {keys.tick_member(release_id, seq): at}, xx=True, ch=True))
