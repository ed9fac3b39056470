"""Redis: everything that must survive a restart.

Keys (prefix `sluice:`):
  release:<id>              JSON of the Release
  release:<id>:events       list of JSON events (append-only)
  release:<id>:evaluations  list of JSON check results (append-only)
  releases                  zset id -> created_at (for listing)
  active:<app>:<service>    id of the release now moving that service's traffic
  stable:<app>:<service>    the service's stable version
  dedup:<key>               id of the release a deploy notification started
  delivery:<id>             JSON of a hook delivery and its attempts
  due                       zset "tick:<release>:<seq>" | "hook:<delivery>" -> when to run
  lock:<name>               short locks (per release, per delivery, scheduler leader)

A decision is committed in one MULTI/EXEC: the new release state, its evaluations and
events, the hook deliveries it causes and the next tick. A crash before EXEC leaves the
old state (the tick is redone); a crash after leaves a complete record.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from app.models import CheckResult, Event, Release

PREFIX = "sluice:"
DEDUP_TTL = 30 * 24 * 3600
_RELEASE_LOCK = PREFIX + "lock:release:"

# A deploy notification seen before: return its release, count the duplicate, keep the first few.
_DUPLICATE = """
local id = redis.call('get', KEYS[1])
if not id then return false end
local release = redis.call('get', ARGV[1] .. 'release:' .. id)
if not release then return false end
local n = redis.call('incr', ARGV[1] .. 'release:' .. id .. ':duplicates')
if n <= tonumber(ARGV[3]) then redis.call('rpush', ARGV[1] .. 'release:' .. id .. ':events', ARGV[2]) end
return release
"""

# Release a lock only if we still own it (it may have expired and been taken by another).
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30, retry_on_timeout=True
    )


def new_release_id() -> str:
    """Time-ordered and unguessable enough: r-<yyyymmddHHMMSS>-<8 hex>."""
    return "r-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Store:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._unlock = client.register_script(_UNLOCK)
        self._duplicate = client.register_script(_DUPLICATE)

    # --- releases ---------------------------------------------------------------------------------

    def get(self, release_id: str) -> Release | None:
        raw = self.r.get(PREFIX + "release:" + release_id)
        return Release.model_validate_json(raw) if raw else None

    def list_releases(
        self,
        service: str | None = None,
        application: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Release], int]:
        """Newest first, filtered. Returns (page, total matching).

        Unfiltered pages (the dashboard's default) read only the page. Filtered lists scan
        the releases newest first, parsing only what the filters cannot rule out cheaply.
        """
        if not (service or application or state):
            total = int(self.r.zcard(PREFIX + "releases"))
            ids = self.r.zrevrange(PREFIX + "releases", offset, offset + limit - 1)
            raws = self.r.mget([PREFIX + "release:" + _text(x) for x in ids]) if ids else []
            return [Release.model_validate_json(raw) for raw in raws if raw], total
        ids = self.r.zrevrange(PREFIX + "releases", 0, -1)
        matched: list[Release] = []
        chunk = 200
        for i in range(0, len(ids), chunk):
            raws = self.r.mget([PREFIX + "release:" + _text(x) for x in ids[i : i + chunk]])
            for raw in raws:
                if not raw:
                    continue
                rel = Release.model_validate_json(raw)
                if (
                    (service and rel.service != service)
                    or (application and rel.application != application)
                    or (state and rel.state != state)
                ):
                    continue
                matched.append(rel)
        return matched[offset : offset + limit], len(matched)

    def get_many(self, release_ids: list[str]) -> list[Release]:
        """The releases that exist among these ids, in one round trip."""
        if not release_ids:
            return []
        raws = self.r.mget([PREFIX + "release:" + rid for rid in release_ids])
        return [Release.model_validate_json(raw) for raw in raws if raw]

    def events(self, release_id: str) -> list[Event]:
        raws = self.r.lrange(PREFIX + f"release:{release_id}:events", 0, -1)
        return [Event.model_validate_json(x) for x in raws]

    def evaluations(self, release_id: str) -> list[CheckResult]:
        raws = self.r.lrange(PREFIX + f"release:{release_id}:evaluations", 0, -1)
        return [CheckResult.model_validate_json(x) for x in raws]

    def create(
        self, release: Release, dedup_key: str, event: Event, first_tick_at: float | None = None
    ) -> tuple[Release, bool]:
        """Store a new release unless `dedup_key` already names one; returns (release, created).
        `first_tick_at` schedules its first tick in the same transaction, so a release is never
        stored without a tick that will move it."""
        key = PREFIX + "dedup:" + dedup_key
        if not self.r.set(key, release.id, nx=True, ex=DEDUP_TTL):
            existing_id = self.r.get(key)
            existing = self.get(_text(existing_id)) if existing_id else None
            if existing is not None:
                return existing, False
            self.r.set(key, release.id, ex=DEDUP_TTL)  # dangling key: the release was never written
        pipe = self.r.pipeline(transaction=True)
        pipe.set(PREFIX + "release:" + release.id, release.model_dump_json())
        pipe.zadd(PREFIX + "releases", {release.id: release.created_at})
        pipe.rpush(PREFIX + f"release:{release.id}:events", event.model_dump_json())
        if first_tick_at is not None:
            pipe.zadd(PREFIX + "due", {f"tick:{release.id}:{release.seq}": first_tick_at})
        pipe.execute()
        return release, True

    def find_dedup(self, dedup_key: str) -> Release | None:
        rid = self.r.get(PREFIX + "dedup:" + dedup_key)
        return self.get(_text(rid)) if rid else None

    def claim_duplicate(self, dedup_key: str, event: Event, keep: int = 10) -> Release | None:
        """The release a deploy notification already started, counting this duplicate and keeping the
        first `keep` as events (a CI retry storm must not grow the event log without bound). One
        round trip: this is the hot path of a retrying sender."""
        raw = self._duplicate(keys=[PREFIX + "dedup:" + dedup_key], args=[PREFIX, event.model_dump_json(), keep])
        return Release.model_validate_json(raw) if raw else None

    def duplicates(self, release_id: str) -> int:
        return int(self.r.get(PREFIX + f"release:{release_id}:duplicates") or 0)

    def commit(
        self,
        release: Release,
        results: Sequence[CheckResult] = (),
        events: Sequence[Event] = (),
        deliveries: Sequence[dict[str, Any]] = (),
        next_tick_at: float | None = None,
        previous_seq: int | None = None,
        stable_version: str | None = None,
    ) -> None:
        """Write a decision atomically (see module docstring)."""
        rid = release.id
        pipe = self.r.pipeline(transaction=True)
        pipe.set(PREFIX + "release:" + rid, release.model_dump_json())
        for res in results:
            pipe.rpush(PREFIX + f"release:{rid}:evaluations", res.model_dump_json())
        for ev in events:
            pipe.rpush(PREFIX + f"release:{rid}:events", ev.model_dump_json())
        for d in deliveries:
            # SET NX: a redone tick that re-creates the same delivery id does not deliver twice.
            pipe.set(PREFIX + "delivery:" + d["id"], json.dumps(d), nx=True)
            pipe.zadd(PREFIX + "due", {"hook:" + d["id"]: d["next_attempt_at"]}, nx=True)
        if previous_seq is not None:
            pipe.zrem(PREFIX + "due", f"tick:{rid}:{previous_seq}")
        if next_tick_at is not None:
            pipe.zadd(PREFIX + "due", {f"tick:{rid}:{release.seq}": next_tick_at})
        svc_key = f"{release.application}:{release.service}"
        if stable_version is not None:
            pipe.set(PREFIX + "stable:" + svc_key, stable_version)
        if release.terminal:
            # Clear `active` only if it still points at this release (a newer one may have taken it).
            pipe.eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
                1,
                PREFIX + "active:" + svc_key,
                rid,
            )
        pipe.execute()

    # --- per-service pointers -----------------------------------------------------------------------

    def stable_version(self, application: str, service: str) -> str | None:
        v = self.r.get(PREFIX + f"stable:{application}:{service}")
        return _text(v) if v else None

    def active_release(self, application: str, service: str) -> str | None:
        v = self.r.get(PREFIX + f"active:{application}:{service}")
        return _text(v) if v else None

    def set_active(self, application: str, service: str, release_id: str) -> None:
        self.r.set(PREFIX + f"active:{application}:{service}", release_id)

    # --- hook deliveries ------------------------------------------------------------------------------

    def get_delivery(self, delivery_id: str) -> dict[str, Any] | None:
        raw = self.r.get(PREFIX + "delivery:" + delivery_id)
        return json.loads(raw) if raw else None

    def deliveries(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raws = self.r.mget([PREFIX + "delivery:" + i for i in ids])
        return [json.loads(x) for x in raws if x]

    def save_delivery(
        self, delivery: dict[str, Any], next_attempt_at: float | None, event: Event | None = None
    ) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(PREFIX + "delivery:" + delivery["id"], json.dumps(delivery))
        if next_attempt_at is None:
            pipe.zrem(PREFIX + "due", "hook:" + delivery["id"])
        else:
            pipe.zadd(PREFIX + "due", {"hook:" + delivery["id"]: next_attempt_at})
        if event is not None:
            pipe.rpush(PREFIX + f"release:{delivery['release_id']}:events", event.model_dump_json())
        pipe.execute()

    # --- scheduling -------------------------------------------------------------------------------------

    def schedule(self, member: str, at: float) -> None:
        self.r.zadd(PREFIX + "due", {member: at})

    def unschedule(self, member: str) -> None:
        self.r.zrem(PREFIX + "due", member)

    def claim_due(self, now: float, lease: float, limit: int = 500) -> list[str]:
        """Due members, each pushed `lease` seconds ahead so that a crashed job is retried later."""
        members = self.r.zrangebyscore(PREFIX + "due", "-inf", now, start=0, num=limit)
        if not members:
            return []
        pipe = self.r.pipeline(transaction=True)
        for m in members:
            pipe.zadd(PREFIX + "due", {_text(m): now + lease}, xx=True)
        pipe.execute()
        return [_text(m) for m in members]

    def due_count(self) -> int:
        return int(self.r.zcard(PREFIX + "due"))

    # --- locks ------------------------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, ttl: float = 30.0, wait: float = 0.0) -> Iterator[bool]:
        """A Redis lock with a TTL (a crashed holder frees it). Yields whether it was acquired."""
        key = PREFIX + "lock:" + name
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        while not acquired and time.monotonic() < deadline:
            time.sleep(0.05)
            acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        try:
            yield acquired
        finally:
            if acquired:
                self._unlock(keys=[key], args=[token])

    def try_lead(self, name: str, token: str, ttl: float) -> bool:
        """Take or renew a leader lease (for the scheduler loop)."""
        key = PREFIX + "lock:" + name
        if self.r.set(key, token, nx=True, px=int(ttl * 1000)):
            return True
        renewed = self.r.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
            1,
            key,
            token,
            int(ttl * 1000),
        )
        return bool(renewed)

    def ping(self) -> bool:
        return bool(self.r.ping())
