"""What Sluice changed of a release's replicas (`Store.scaling`): the original replicas and HPA
minReplicas, kept so that a failure puts them back, and the scale work scheduled after the release
ends (`scale:<release>` in the `due` set: restore, or scale the old version down after a delay).

Originals are written with HSETNX before the change they record: a redone tick, or a second raise
at a later step, never overwrites the first value, so what is put back is what was there before
Sluice. Done marks (`done:<what>`) make the after-release work once-only across retries.
"""

from __future__ import annotations

from typing import Any

import redis

from app.core.models import Event
from app.store import keys

DONE = "done:"
ATTEMPTS = "attempts"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ScalingStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def record_original(self, release_id: str, target: str, original: int, event: Event) -> int:
        """Keep `target`'s original value (unless one is kept already) with the event saying what
        Sluice is about to change; returns the original kept."""
        key = keys.release_scaled(release_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hsetnx(key, target, original)
        pipe.hget(key, target)
        pipe.rpush(keys.release_events(release_id), event.model_dump_json())
        _, kept, _ = pipe.execute()
        return int(kept)

    def originals(self, release_id: str) -> dict[str, int]:
        """target ("deployment/<name>" or "hpa/<name>") -> its value before Sluice changed it."""
        raw = self.r.hgetall(keys.release_scaled(release_id))
        out = {}
        for field, value in raw.items():
            name = _text(field)
            if not name.startswith(DONE) and name != ATTEMPTS:
                out[name] = int(value)
        return out

    def done(self, release_id: str, what: str) -> bool:
        return bool(self.r.hexists(keys.release_scaled(release_id), DONE + what))

    def mark_done(self, release_id: str, what: str, at: float, event: Event | None = None) -> bool:
        """Mark `what` done (with its event, once); False if it was already marked."""
        key = keys.release_scaled(release_id)
        if not self.r.hsetnx(key, DONE + what, at):
            return False
        if event is not None:
            self.r.rpush(keys.release_events(release_id), event.model_dump_json())
        return True

    def failed_attempt(self, release_id: str) -> int:
        """Count a failed attempt at the after-release work; returns how many so far."""
        return int(self.r.hincrby(keys.release_scaled(release_id), ATTEMPTS, 1))

    def schedule(self, release_id: str, at: float) -> None:
        self.r.zadd(keys.DUE, {keys.scale_member(release_id): at})

    def unschedule(self, release_id: str) -> None:
        self.r.zrem(keys.DUE, keys.scale_member(release_id))

    def scheduled_at(self, release_id: str) -> float | None:
        score = self.r.zscore(keys.DUE, keys.scale_member(release_id))
        return None if score is None else float(score)
