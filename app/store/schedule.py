"""Hook deliveries and the `due` schedule (the `DueSchedule` part of Store): ticks, deliveries and scale
work are members of one sorted set, by when they are due (`keys.tick_member`, `keys.hook_member`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from app.core.models import Delivery, Event
from app.store import keys, queues


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DueSchedule:
    r: redis.Redis

    # --- hook deliveries ------------------------------------------------------------------------------

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        raw = self.r.get(keys.delivery(delivery_id))
        return Delivery.model_validate_json(raw) if raw else None

    def deliveries(self, ids: list[str]) -> list[Delivery]:
        if not ids:
            return []
        raws = self.r.mget([keys.delivery(i) for i in ids])
        return [Delivery.model_validate_json(x) for x in raws if x]

    def save_delivery(self, delivery: Delivery, next_attempt_at: float | None, event: Event | None = None) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(keys.delivery(delivery.id), delivery.model_dump_json())
        if next_attempt_at is None:
            pipe.zrem(keys.DUE, keys.hook_member(delivery.id))
        else:
            pipe.zadd(keys.DUE, {keys.hook_member(delivery.id): next_attempt_at})
        if event is not None:
            pipe.rpush(keys.release_events(delivery.release_id), event.model_dump_json())
        pipe.execute()

    # --- scheduling -------------------------------------------------------------------------------------

    def schedule_tick(self, release_id: str, seq: int, at: float) -> None:
        self.r.zadd(keys.DUE, {keys.tick_member(release_id, seq): at})

    def unschedule_tick(self, release_id: str, seq: int) -> None:
        self.r.zrem(keys.DUE, keys.tick_member(release_id, seq))

    def unschedule_delivery(self, delivery_id: str) -> None:
        self.r.zrem(keys.DUE, keys.hook_member(delivery_id))

    def bring_delivery_forward(self, delivery_id: str, at: float) -> None:
        """Make a scheduled delivery due at `at` if that is sooner (a finished one stays unscheduled)."""
        self.r.zadd(keys.DUE, {keys.hook_member(delivery_id): at}, xx=True, lt=True)

    def schedule(self, member: str, at: float) -> None:
        """Schedule a due member as built by `keys.tick_member` / `keys.hook_member`."""
        self.r.zadd(keys.DUE, {member: at})

    def unschedule(self, member: str) -> None:
        """Drop a due member as the scheduler found it (e.g. one it cannot parse)."""
        self.r.zrem(keys.DUE, member)

    def claim_due(self, now: float, lease: float, limit: int = 500) -> list[str]:
        """Due members, each pushed `lease` seconds ahead so that a crashed job is retried later.
        Parse them with `keys.parse_due_member`."""
        members = self.r.zrangebyscore(keys.DUE, "-inf", now, start=0, num=limit)
        if not members:
            return []
        pipe = self.r.pipeline(transaction=True)
        for m in members:
            pipe.zadd(keys.DUE, {_text(m): now + lease}, xx=True)
        pipe.execute()
        return [_text(m) for m in members]

    def retry_tick(self, release_id: str, seq: int, at: float) -> None:
        """Bring a scheduled tick forward to `at` (only if it is still scheduled: ZADD XX)."""
        self.r.zadd(keys.DUE, {keys.tick_member(release_id, seq): at}, xx=True)

    def extend_tick_claims(self, ticks: Sequence[tuple[str, int]], until: float) -> None:
        """Push claimed ticks that are still scheduled to `until` (a running batch's claim renewal)."""
        if ticks:
            self.r.zadd(keys.DUE, {keys.tick_member(rid, seq): until for rid, seq in ticks}, xx=True)

    def hand_over_tick(self, release_id: str, seq: int, at: float) -> None:
        """Make the release's tick due at `at` and put it on the urgent queue, in one transaction:
        a worker that is free takes it at once, and if none is, the scheduler finds it due."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.multi()  # RQ joins an open MULTI rather than starting its own
            pipe.zadd(keys.DUE, {keys.tick_member(release_id, seq): at})
            queues.queue(queues.URGENT_QUEUE, self.r).enqueue_call(
                queues.TICK_RUNNER,
                args=([(release_id, seq)],),
                timeout=65,
                result_ttl=0,
                failure_ttl=24 * 3600,
                description=f"handed over by the web: {release_id}#{seq}",
                pipeline=pipe,
            )
            pipe.execute()

    def due_count(self) -> int:
        return int(self.r.zcard(keys.DUE))
