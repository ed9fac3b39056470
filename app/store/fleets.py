"""Fleet records (app/core/fleet.py): the fleet's JSON, its event log, its listing index and its next
look in the `due` schedule, written together in one MULTI so that a crash leaves a fleet with a tick.

A commit names the seq it read (WATCH on the fleet's key): two ticks that raced cannot both record a
change, the second is told (FleetChanged) and does nothing.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

from app.core.fleet import Fleet
from app.core.models import Delivery, Event
from app.store import keys
from app.store.release_records import DEDUP_TTL


class FleetChanged(Exception):
    """The fleet moved on since it was read (another tick recorded first)."""


def new_fleet_id() -> str:
    """Time-ordered like a release id: f-<yyyymmddHHMMSS>-<8 hex>."""
    return "f-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FleetStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def get(self, fleet_id: str) -> Fleet | None:
        raw = self.r.get(keys.fleet(fleet_id))
        return Fleet.model_validate_json(raw) if raw else None

    def events(self, fleet_id: str) -> list[Event]:
        return [Event.model_validate_json(x) for x in self.r.lrange(keys.fleet_events(fleet_id), 0, -1)]

    def recent(self, limit: int = 50, service: str | None = None) -> list[Fleet]:
        """The newest fleets first (of one service, when given)."""
        ids = [_text(i) for i in self.r.zrevrange(keys.FLEETS, 0, 999 if service else limit - 1)]
        raws = self.r.mget([keys.fleet(i) for i in ids]) if ids else []
        fleets = [Fleet.model_validate_json(raw) for raw in raws if raw]
        return [f for f in fleets if service is None or f.service == service][:limit]

    def create(self, fleet: Fleet, event: Event, force: bool = False) -> tuple[Fleet, bool]:
        """Store a new fleet unless the version's announcement already started one; returns (fleet,
        created). `force`: a finished fleet of the version does not count. Its first look is due now."""
        dedup = keys.fleet_dedup(fleet.service, fleet.version)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(dedup)
                    existing_id = pipe.get(dedup)
                    existing = self.get(_text(existing_id)) if existing_id else None
                    if existing is not None and not (force and existing.terminal):
                        pipe.unwatch()
                        return existing, False
                    pipe.multi()
                    pipe.set(dedup, fleet.id, ex=DEDUP_TTL)
                    pipe.set(keys.fleet(fleet.id), fleet.model_dump_json())
                    pipe.zadd(keys.FLEETS, {fleet.id: fleet.created_at})
                    pipe.rpush(keys.fleet_events(fleet.id), event.model_dump_json())
                    pipe.zadd(keys.DUE, {keys.fleet_member(fleet.id): fleet.created_at})
                    pipe.execute()
                    return fleet, True
                except redis.WatchError:
                    continue

    def commit(
        self,
        fleet: Fleet,
        previous_seq: int,
        events: list[Event] | None = None,
        next_look_at: float | None = None,
        deliveries: list[Delivery] | None = None,
    ) -> Fleet:
        """Record the fleet (its seq moved on by one), its events, its own hook deliveries and its next
        look (None: none, the fleet is finished), only if it is still at `previous_seq`."""
        new = fleet.model_copy(update={"seq": previous_seq + 1, "updated_at": time.time()})
        key = keys.fleet(fleet.id)
        with self.r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                if raw is None or Fleet.model_validate_json(raw).seq != previous_seq:
                    raise FleetChanged(f"fleet {fleet.id} moved on since it was read")
                pipe.multi()
                pipe.set(key, new.model_dump_json())
                for e in events or []:
                    pipe.rpush(keys.fleet_events(fleet.id), e.model_dump_json())
                for d in deliveries or []:
                    pipe.set(keys.delivery(d.id), d.model_dump_json(), nx=True)
                    pipe.zadd(keys.DUE, {keys.hook_member(d.id): d.next_attempt_at or time.time()}, nx=True)
                if next_look_at is None:
                    pipe.zrem(keys.DUE, keys.fleet_member(fleet.id))
                else:
                    pipe.zadd(keys.DUE, {keys.fleet_member(fleet.id): next_look_at})
                pipe.execute()
            except redis.WatchError:
                raise FleetChanged(f"fleet {fleet.id} moved on while it was recorded") from None
        return new

    def look_soon(self, fleet_id: str, at: float) -> None:
        """Bring the fleet's next look forward (a member release finished); never later than scheduled."""
        self.r.zadd(keys.DUE, {keys.fleet_member(fleet_id): at}, lt=True)

    def prune(self, before: float, batch: int = 200) -> int:
        """Retention (workers/retention.py): delete the finished fleets that ended before `before` or
        lost a member release to retention (a fleet outliving its members would list waves of releases
        that no longer exist), unless one of the fleet's own hook deliveries is still due. Returns how
        many were deleted."""
        deleted = 0
        ids = [_text(i) for i in self.r.zrange(keys.FLEETS, 0, -1)]
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            for raw in self.r.mget([keys.fleet(i) for i in chunk]):
                fleet = Fleet.model_validate_json(raw) if raw else None
                if fleet is None or not fleet.terminal or not self._expired(fleet, before):
                    continue
                if any(self.r.zscore(keys.DUE, keys.hook_member(h)) is not None for h in fleet.hooks):
                    continue  # a CI delivery is still being retried: a later run deletes it
                with self.r.pipeline(transaction=True) as pipe:
                    pipe.delete(keys.fleet(fleet.id), keys.fleet_events(fleet.id), *map(keys.delivery, fleet.hooks))
                    pipe.zrem(keys.FLEETS, fleet.id)
                    pipe.zrem(keys.DUE, keys.fleet_member(fleet.id))
                    pipe.execute()
                deleted += 1
        return deleted

    def _expired(self, fleet: Fleet, before: float) -> bool:
        if (fleet.finished_at or fleet.updated_at) < before:
            return True
        members = fleet.member_ids()
        return bool(members) and int(self.r.exists(*[keys.release(m) for m in members])) < len(members)

    def unschedule(self, fleet_id: str) -> None:
        self.r.zrem(keys.DUE, keys.fleet_member(fleet_id))
