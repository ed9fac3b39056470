"""The Store: Sluice's records in Redis, behind methods that say what they do.

Keys are built in `app/store/keys.py` (the list is there). A decision is committed in one
MULTI/EXEC: the new release state, its evaluations and events, the hook deliveries it causes
and the next tick. A crash before EXEC leaves the old state (the tick is redone); a crash after
leaves a complete record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

from app.core.known_bad import KnownBad
from app.core.models import CheckResult, Delivery, Event, Release
from app.store import keys, listing
from app.store.gate_records import GateStore
from app.store.jobs import JobStore
from app.store.listing import ReleasePage
from app.store.metrics import MetricsStore
from app.store.people import PeopleStore
from app.store.retention import Retention
from app.store.scaling import ScalingStore

log = logging.getLogger("sluice.store")
PREFIX = keys.PREFIX
DEDUP_TTL = 30 * 24 * 3600
# A dedup key whose release does not exist is taken over only once it is this old: `create` writes
# both in one script, so a missing release was removed (or a writer died half-way, which only a
# Sluice older than the script could do), and a young one may still be a writer's.
DANGLING_GRACE = 300
# Behind Sentinel, how long a new release's creation waits for a replica to have it (Store._replicated).
REPLICA_WAIT_MS = 500


# A commit retries when the release or its lock changed between reading and writing (WATCH); a
# heartbeat renewing the lease is such a change, so a few attempts are normal, many mean contention.
_COMMIT_ATTEMPTS = 20


class LeaseLost(Exception):
    """A commit was refused: the release's lease or lock is no longer held by this thread's holder."""


class DedupBusy(Exception):
    """A dedup key names a release that is not there, and is too young to be declared dangling."""


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

# Create a release unless its dedup key names one, in one step: the dedup key, the release, its listing,
# its first event, its listing indexes and (optionally) its first tick are written together, or not at all. An existing
# release is returned (the duplicate counted, the first few kept as events); a dedup key without its
# release is overwritten only when DANGLING_GRACE old (see `DEDUP_TTL - ttl`), else {2, id}.
# Forced (ARGV[12] == '1'): a finished release under the key is replaced, and the version's known-bad
# entry (KEYS[6], field ARGV[13]) is cleared with the creation, so a forced release is not refused again.
# The service joins SERVICES (KEYS[7], member ARGV[14]); KEYS[8..] are the release's listing indexes.
_CREATE = """
local id = redis.call('get', KEYS[1])
if id then
  local existing = redis.call('get', ARGV[1] .. 'release:' .. id)
  local state = existing and ARGV[12] == '1' and cjson.decode(existing)['state']
  if state == 'succeeded' or state == 'failed' or state == 'aborted' then
    existing = false  -- a forced release replaces a finished one of the same version
    ARGV[11] = '0'
  end
  if existing then
    local n = redis.call('incr', ARGV[1] .. 'release:' .. id .. ':duplicates')
    if ARGV[9] ~= '' and n <= tonumber(ARGV[10]) then
      redis.call('rpush', ARGV[1] .. 'release:' .. id .. ':events', ARGV[9])
    end
    return {0, existing}
  end
  local ttl = redis.call('ttl', KEYS[1])
  if ttl >= 0 and tonumber(ARGV[6]) - ttl < tonumber(ARGV[11]) then return {2, id} end
end
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[6])
redis.call('set', KEYS[2], ARGV[3])
redis.call('zadd', KEYS[3], ARGV[4], ARGV[2])
redis.call('rpush', KEYS[4], ARGV[5])
if ARGV[7] ~= '' then redis.call('zadd', KEYS[5], ARGV[8], ARGV[7]) end
if ARGV[13] ~= '' then redis.call('hdel', KEYS[6], ARGV[13]) end
redis.call('sadd', KEYS[7], ARGV[14])
for i = 8, #KEYS do redis.call('zadd', KEYS[i], ARGV[4], ARGV[2]) end
return {1, ARGV[3]}
"""

# Extend a lock's TTL only if it still holds our token (a lease renewal; a leader lease's too).
_RENEW_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""

# Delete a key only if it still holds our value: a lock we own (it may have expired and been taken
# by another), or the `active` pointer of a release that has not been superseded.
_DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stored_state(raw: Any) -> str | None:
    """The state of a stored release's JSON (None: not stored)."""
    if not raw:
        return None
    return str(json.loads(raw).get("state"))


def new_release_id() -> str:
    """Time-ordered and unguessable enough: r-<yyyymmddHHMMSS>-<8 hex>."""
    return "r-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Store:
    def __init__(self, client: redis.Redis):
        self.r = client  # for RQ (workers/worker.py) and tests; Sluice's own code calls the methods
        self.metrics = MetricsStore(client)
        self.jobs = JobStore(client)  # replay and backtest jobs (app/store/jobs.py)
        self.gates = GateStore(client)
        self.people = PeopleStore(client)  # people's API tokens and the audit log (app/store/people.py)
        self.retention = Retention(client)
        self.scaling = ScalingStore(client)
        self._unlock = client.register_script(_DELETE_IF_EQUAL)
        self._duplicate = client.register_script(_DUPLICATE)
        self._create = client.register_script(_CREATE)
        self._renew = client.register_script(_RENEW_IF_EQUAL)
        self._held = threading.local()  # the release locks and leases this thread holds (`_fences`)

    # --- releases ---------------------------------------------------------------------------------

    def get(self, release_id: str) -> Release | None:
        raw = self.r.get(keys.release(release_id))
        return Release.model_validate_json(raw) if raw else None

    def list_releases(
        self,
        service: str | None = None,
        application: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Release], int]:
        """Newest first, filtered. Returns (page, total matching). See `release_page`."""
        page = self.release_page(service=service, application=application, state=state, limit=limit, offset=offset)
        return page.releases, page.total

    def release_page(
        self,
        service: str | None = None,
        application: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> ReleasePage:
        """A page of releases, newest first, read from the index of these filters (never a scan):
        a handful of Redis commands whatever the number of releases. `cursor` (from a previous
        page's `next_cursor`) continues after that page; a bad one raises BadCursor."""
        index = keys.release_index(application or "", service or "", state or "")
        return listing.page(self.r, index, limit, offset, cursor)

    def get_many(self, release_ids: list[str]) -> list[Release]:
        """The releases that exist among these ids, in one round trip."""
        if not release_ids:
            return []
        raws = self.r.mget([keys.release(rid) for rid in release_ids])
        return [Release.model_validate_json(raw) for raw in raws if raw]

    def events(self, release_id: str) -> list[Event]:
        raws = self.r.lrange(keys.release_events(release_id), 0, -1)
        return [Event.model_validate_json(x) for x in raws]

    def evaluations(self, release_id: str) -> list[CheckResult]:
        raws = self.r.lrange(keys.release_evaluations(release_id), 0, -1)
        return [CheckResult.model_validate_json(x) for x in raws]

    def create(
        self,
        release: Release,
        dedup_key: str,
        event: Event,
        first_tick_at: float | None = None,
        duplicate: Event | None = None,
        keep: int = 10,
        force: bool = False,
    ) -> tuple[Release, bool]:
        """Store a new release unless `dedup_key` already names one; returns (release, created).
        One script (`_CREATE`): however many callers race on the same key, one creates and the
        others get its release (each counted as a duplicate, `duplicate` kept as an event for the
        first `keep`). `first_tick_at` schedules its first tick with it, so a release is never
        stored without a tick that will move it. Raises DedupBusy for a young key without a release.
        `force`: a finished release under the key does not count (a new one is created in its place)
        and the target version's known-bad entry is cleared with the creation."""
        tick = keys.tick_member(release.id, release.seq) if first_tick_at is not None else ""
        stateless, stateful = keys.release_indexes(release.application, release.service, release.state)
        status, raw = self._create(
            keys=[
                keys.dedup(dedup_key),
                keys.release(release.id),
                keys.RELEASES,
                keys.release_events(release.id),
                keys.DUE,
                keys.known_bad(release.application, release.service),
                keys.SERVICES,
                *[k for k in stateless if k != keys.RELEASES],
                *stateful,
            ],
            args=[
                PREFIX,
                release.id,
                release.model_dump_json(),
                release.created_at,
                event.model_dump_json(),
                DEDUP_TTL,
                tick,
                first_tick_at or 0,
                duplicate.model_dump_json() if duplicate is not None else "",
                keep,
                DANGLING_GRACE,
                "1" if force else "0",
                release.target_version if force else "",
                keys.service_member(release.application, release.service),
            ],
        )
        if int(status) == 2:
            raise DedupBusy(_text(raw))
        if int(status) == 1:
            self._replicated()
            return release, True
        return Release.model_validate_json(raw), False

    def _replicated(self) -> None:
        """Behind Sentinel, wait (up to REPLICA_WAIT_MS) until a replica has the write: the intake's
        202 promises a stored release, and a master killed a moment later would take it along
        (seen in 1 of 10 failover runs). Redis replication stays asynchronous; this narrows the
        window to a failover within the wait, and costs nothing without Sentinel."""
        if not isinstance(self.r.connection_pool, SentinelConnectionPool):
            return
        with contextlib.suppress(redis.RedisError):  # stored on the master; the wait is a best effort
            self.r.wait(1, REPLICA_WAIT_MS)

    def find_dedup(self, dedup_key: str) -> Release | None:
        rid = self.r.get(keys.dedup(dedup_key))
        return self.get(_text(rid)) if rid else None

    def claim_duplicate(self, dedup_key: str, event: Event, keep: int = 10) -> Release | None:
        """The release a deploy notification already started, counting this duplicate and keeping the
        first `keep` as events (a CI retry storm must not grow the event log without bound). One
        round trip: this is the hot path of a retrying sender."""
        raw = self._duplicate(keys=[keys.dedup(dedup_key)], args=[PREFIX, event.model_dump_json(), keep])
        return Release.model_validate_json(raw) if raw else None

    def duplicates(self, release_id: str) -> int:
        return int(self.r.get(keys.release_duplicates(release_id)) or 0)

    def commit(
        self,
        release: Release,
        results: Sequence[CheckResult] = (),
        events: Sequence[Event] = (),
        deliveries: Sequence[Delivery] = (),
        next_tick_at: float | None = None,
        previous_seq: int | None = None,
        stable_version: str | None = None,
        known_bad: KnownBad | None = None,
        also_due: dict[str, float] | None = None,
    ) -> None:
        """Write a decision atomically (see module docstring), with the release's listing indexes;
        `known_bad` marks a version the decision found bad (app/core/known_bad.py); `also_due`: more `due`
        members the decision starts (e.g. `keys.scale_member`), kept at their first time if already there.

        Fenced: when this thread holds the release's lease or lock (`release_lease`, `release_lock`),
        the write happens only if the lock still holds our token, checked atomically with the write
        (WATCH on the lock: a holder that lost it, and another took it, cannot commit). Raises
        LeaseLost then; nothing is written."""
        fence = self._fences().get(release.id)
        for _ in range(_COMMIT_ATTEMPTS):
            try:
                self._commit_once(
                    release,
                    fence,
                    results,
                    events,
                    deliveries,
                    next_tick_at,
                    previous_seq,
                    stable_version,
                    known_bad,
                    also_due,
                )
                return
            except redis.WatchError:
                continue  # the release or the lock changed (a lease renewal does too): check again
        raise LeaseLost(f"release {release.id}: could not commit after {_COMMIT_ATTEMPTS} concurrent changes")

    def _commit_once(
        self,
        release: Release,
        fence: tuple[str, str] | None,
        results: Sequence[CheckResult],
        events: Sequence[Event],
        deliveries: Sequence[Delivery],
        next_tick_at: float | None,
        previous_seq: int | None,
        stable_version: str | None,
        known_bad: KnownBad | None = None,
        also_due: dict[str, float] | None = None,
    ) -> None:
        rid = release.id
        with self.r.pipeline(transaction=True) as pipe:
            watched = [keys.release(rid), *([fence[0]] if fence else [])]
            pipe.watch(*watched)
            stored, holder = pipe.mget(keys.release(rid), fence[0] if fence else keys.release(rid))
            if fence is not None and (holder is None or _text(holder) != fence[1]):
                raise LeaseLost(f"release {rid}: its lease was lost (another holder may act on it); not committed")
            old_state = _stored_state(stored)
            pipe.multi()
            pipe.set(keys.release(rid), release.model_dump_json())
            self._queue_indexes(pipe, release, old_state)
            for res in results:
                pipe.rpush(keys.release_evaluations(rid), res.model_dump_json())
            for ev in events:
                pipe.rpush(keys.release_events(rid), ev.model_dump_json())
            for d in deliveries:
                # SET NX: a redone tick that re-creates the same delivery id does not deliver twice.
                pipe.set(keys.delivery(d.id), d.model_dump_json(), nx=True)
                pipe.zadd(keys.DUE, {keys.hook_member(d.id): d.next_attempt_at or release.updated_at}, nx=True)
            if previous_seq is not None:
                pipe.zrem(keys.DUE, keys.tick_member(rid, previous_seq))
            if next_tick_at is not None:
                pipe.zadd(keys.DUE, {keys.tick_member(rid, release.seq): next_tick_at})
            if also_due:
                pipe.zadd(keys.DUE, also_due, nx=True)
            if stable_version is not None:
                pipe.set(keys.stable(release.application, release.service), stable_version)
            if known_bad is not None:
                pipe.hset(
                    keys.known_bad(release.application, release.service),
                    known_bad.version,
                    known_bad.model_dump_json(),
                )
            if release.terminal:
                # Clear `active` only if it still points at this release (a newer one may have taken it).
                pipe.eval(_DELETE_IF_EQUAL, 1, keys.active(release.application, release.service), rid)
            pipe.execute()

    @staticmethod
    def _queue_indexes(pipe: Any, release: Release, old_state: str | None) -> None:
        """Keep the listing indexes (keys.release_index) in step with the release, in its commit:
        only a change of state (or a release not stored before) moves anything."""
        app, svc = release.application, release.service
        stateless, stateful = keys.release_indexes(app, svc, release.state)
        if old_state is None:
            for key in stateless:
                pipe.zadd(key, {release.id: release.created_at})
            pipe.sadd(keys.SERVICES, keys.service_member(app, svc))
        if old_state != release.state:
            if old_state is not None:
                for key in keys.release_indexes(app, svc, old_state)[1]:
                    pipe.zrem(key, release.id)
            for key in stateful:
                pipe.zadd(key, {release.id: release.created_at})
            if release.terminal:
                finished = release.finished_at or release.updated_at
                pipe.zadd(keys.FINISHED, {release.id: finished})
                pipe.zadd(keys.finished_by_service(app, svc), {release.id: finished})

    # --- per-service pointers -----------------------------------------------------------------------

    def stable_version(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.stable(application, service))
        return _text(v) if v else None

    def active_release(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.active(application, service))
        return _text(v) if v else None

    def set_active(self, application: str, service: str, release_id: str) -> None:
        self.r.set(keys.active(application, service), release_id)

    # --- known-bad versions (app/core/known_bad.py) -------------------------------------------------------

    def known_bad(self, application: str, service: str) -> list[KnownBad]:
        """The service's known-bad versions, newest first."""
        raws = self.r.hvals(keys.known_bad(application, service))
        return sorted((KnownBad.model_validate_json(x) for x in raws), key=lambda k: -k.at)

    def known_bad_version(self, application: str, service: str, version: str) -> KnownBad | None:
        raw = self.r.hget(keys.known_bad(application, service), version)
        return KnownBad.model_validate_json(raw) if raw else None

    def clear_known_bad(self, application: str, service: str, version: str) -> KnownBad | None:
        """Forget that a version is bad; returns the entry that was there (None: it was not known-bad).
        The version's deploy dedup key goes with it when it names a finished release, so that the next
        announcement starts a new release rather than answering with the old one as a duplicate."""
        entry = self.known_bad_version(application, service, version)
        if entry is None:
            return None
        dedup_key = keys.dedup(keys.deploy_dedup(application, service, version))
        rid = self.r.get(dedup_key)
        previous = self.get(_text(rid)) if rid else None
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(keys.known_bad(application, service), version)
        if previous is not None and previous.terminal:
            pipe.eval(_DELETE_IF_EQUAL, 1, dedup_key, previous.id)
        pipe.execute()
        return entry

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

    def due_count(self) -> int:
        return int(self.r.zcard(keys.DUE))

    # --- locks and leases -------------------------------------------------------------------------------

    def release_lock(self, release_id: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        """The per-release lock a steering action (and the intake's supersede) holds while it decides;
        its commits on the release are fenced by it (see `commit`)."""
        return self._lock(keys.release_lock(release_id), ttl, wait, fence_for=release_id)

    def _fences(self) -> dict[str, tuple[str, str]]:
        """release id -> (lock key, token) of the release locks and leases this thread holds."""
        fences: dict[str, tuple[str, str]] | None = getattr(self._held, "fences", None)
        if fences is None:
            fences = self._held.fences = {}
        return fences

    def release_lease(self, release_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """The per-release lock as a short lease, renewed every `ttl / 3` by a heartbeat thread while
        the holder runs and released at the end: a holder that dies frees the release within `ttl`.
        Yields None when another holds it. A lease whose renewal fails (taken by another, or Redis
        unreachable until the lease would have expired) reports `held() == False`: its holder must
        not act on the release any more."""
        return self._lease(keys.release_lock(release_id), ttl, fence_for=release_id)

    def delivery_lease(self, delivery_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """A hook delivery's lock as a short lease (see `release_lease`): a worker killed mid-call
        frees the delivery within `ttl`, not after the job's whole timeout."""
        return self._lease(keys.delivery_lock(delivery_id), ttl)

    def delivery_lease_left(self, delivery_id: str) -> float:
        """Seconds until the delivery's lease runs out unless its holder renews it (0: not held)."""
        return max(0.0, int(self.r.pttl(keys.delivery_lock(delivery_id))) / 1000)

    @contextmanager
    def _lease(self, key: str, ttl: float, fence_for: str | None = None) -> Iterator[Lease | None]:
        """A lock renewed by a heartbeat while held. `fence_for`: a release whose commits it fences."""
        token = uuid.uuid4().hex
        if not self.r.set(key, token, nx=True, px=int(ttl * 1000)):
            yield None
            return
        lease = Lease(self, key, token, ttl)
        lease.start()
        if fence_for is not None:
            self._fences()[fence_for] = (key, token)
        try:
            yield lease
        finally:
            if fence_for is not None:
                self._fences().pop(fence_for, None)
            lease.stop()
            if lease.held():
                self._unlock(keys=[key], args=[token])

    def lock(self, name: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        return self._lock(keys.lock(name), ttl, wait)

    @contextmanager
    def _lock(self, key: str, ttl: float, wait: float, fence_for: str | None = None) -> Iterator[bool]:
        """A Redis lock with a TTL (a crashed holder frees it). Yields whether it was acquired.
        `fence_for`: a release whose commits this lock fences while held."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        while not acquired and time.monotonic() < deadline:
            time.sleep(0.05)
            acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        if acquired and fence_for is not None:
            self._fences()[fence_for] = (key, token)
        try:
            yield acquired
        finally:
            if acquired and fence_for is not None:
                self._fences().pop(fence_for, None)
            if acquired:
                self._unlock(keys=[key], args=[token])

    def try_lead(self, name: str, token: str, ttl: float) -> bool:
        """Take or renew a leader lease (the scheduler loop, the watcher)."""
        key = keys.lock(name)
        if self.r.set(key, token, nx=True, px=int(ttl * 1000)):
            return True
        return bool(self._renew(keys=[key], args=[token, int(ttl * 1000)]))

    def resign(self, name: str, token: str) -> None:
        """Give a leader lease up at once (a clean exit), if it is still ours."""
        self._unlock(keys=[keys.lock(name)], args=[token])

    # --- receivers: once-only processing of a sender's events ----------------------------------------

    def claim_event(self, source: str, event_key: str, marker: str, ttl: int) -> str | None:
        """Claim an event (SET NX with a TTL). None: ours to process; otherwise what its first delivery
        recorded. SET NX GET (Redis 7): claim and read what was there in one round trip."""
        seen = self.r.set(keys.event(source, event_key), marker, nx=True, ex=ttl, get=True)
        return None if seen is None else _text(seen)

    def settle_event(self, source: str, event_key: str, outcome: str | None, ttl: int) -> None:
        """Record what an event led to for `ttl` seconds; None forgets it (its retry is welcome)."""
        key = keys.event(source, event_key)
        if outcome is None:
            self.r.delete(key)
        else:
            self.r.set(key, outcome, ex=ttl)

    # --- Kubernetes: restart baselines ------------------------------------------------------------------

    def restart_baselines(self, release_id: str, first_seen: dict[str, int], ttl: int) -> dict[str, int]:
        """Each pod's restart count when the release first saw it: `first_seen` is kept for pods not
        seen before (HSETNX, so every worker agrees), and the kept baselines are returned."""
        if not first_seen:
            return {}
        key = keys.restart_baseline(release_id)
        pipe = self.r.pipeline(transaction=False)
        for uid, count in first_seen.items():
            pipe.hsetnx(key, uid, count)
        pipe.hmget(key, list(first_seen))
        pipe.expire(key, ttl)
        baselines = pipe.execute()[-2]
        return {uid: int(b or 0) for uid, b in zip(first_seen, baselines, strict=True)}

    def ping(self) -> bool:
        return bool(self.r.ping())

    def persistence(self) -> dict[str, str]:
        """Redis's persistence settings (`appendonly`, `save`), for `sluice doctor`."""
        out: dict[str, str] = {}
        for name in ("appendonly", "save"):
            out.update({_text(k): _text(v) for k, v in dict(self.r.config_get(name)).items()})
        return out


class Lease:
    """A lock held for as long as its holder runs: a heartbeat thread renews it every `ttl / 3`.
    `held()` turns False for good when a renewal finds the lock no longer ours, or when renewals
    fail (Redis unreachable) until the lease's last confirmed expiry has passed."""

    def __init__(self, store: Store, key: str, token: str, ttl: float):
        self.store, self.key, self.token, self.ttl = store, key, token, ttl
        self.expires = time.monotonic() + ttl  # as far as we know; conservative (set before the SET)
        self._lost = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {key}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(self.ttl)

    def held(self) -> bool:
        return not self._lost.is_set() and time.monotonic() < self.expires

    def renew(self) -> bool:
        """One renewal; False once the lease is lost."""
        sent = time.monotonic()
        try:
            ok = bool(self.store._renew(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))
        except redis.RedisError as exc:
            log.warning("could not renew lease %s: %s", self.key, exc)
            return self.held()
        if not ok:
            self._lost.set()
            return False
        self.expires = sent + self.ttl
        return True

    def _beat(self) -> None:
        while not self._stopping.wait(self.ttl / 3):
            if not self.renew():
                log.warning("lost lease %s", self.key)
                return
