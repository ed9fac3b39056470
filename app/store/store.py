"""The Store: Sluice's records in Redis, behind methods that say what they do.

Keys are built in `app/store/keys.py` (the list is there). A decision is committed in one
MULTI/EXEC: the new release state, its evaluations and events, the hook deliveries it causes
and the next tick. A crash before EXEC leaves the old state (the tick is redone); a crash after
leaves a complete record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

from app.known_bad import KnownBad
from app.models import CheckResult, Delivery, Event, Release
from app.store import keys
from app.store.gates import GateStore
from app.store.jobs import JobStore
from app.store.metrics import MetricsStore

log = logging.getLogger("sluice.store")
PREFIX = keys.PREFIX
DEDUP_TTL = 30 * 24 * 3600
# A dedup key whose release does not exist is taken over only once it is this old: `create` writes
# both in one script, so a missing release was removed (or a writer died half-way, which only a
# Sluice older than the script could do), and a young one may still be a writer's.
DANGLING_GRACE = 300
# Behind Sentinel, how long a new release's creation waits for a replica to have it (Store._replicated).
REPLICA_WAIT_MS = 500


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
# its first event and (optionally) its first tick are written together, or not at all. An existing
# release is returned (the duplicate counted, the first few kept as events); a dedup key without its
# release is overwritten only when DANGLING_GRACE old (see `DEDUP_TTL - ttl`), else {2, id}.
# Forced (ARGV[12] == '1'): a finished release under the key is replaced, and the version's known-bad
# entry (KEYS[6], field ARGV[13]) is cleared with the creation, so a forced release is not refused again.
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


def new_release_id() -> str:
    """Time-ordered and unguessable enough: r-<yyyymmddHHMMSS>-<8 hex>."""
    return "r-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Store:
    def __init__(self, client: redis.Redis):
        self.r = client  # for RQ (workers/worker.py) and tests; Sluice's own code calls the methods
        self.metrics = MetricsStore(client)
        self.jobs = JobStore(client)  # replay and backtest jobs (app/store/jobs.py)
        self.gates = GateStore(client)
        self._unlock = client.register_script(_DELETE_IF_EQUAL)
        self._duplicate = client.register_script(_DUPLICATE)
        self._create = client.register_script(_CREATE)
        self._renew = client.register_script(_RENEW_IF_EQUAL)

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
        """Newest first, filtered. Returns (page, total matching).

        Unfiltered pages (the dashboard's default) read only the page. Filtered lists scan
        the releases newest first, parsing only what the filters cannot rule out cheaply.
        """
        if not (service or application or state):
            total = int(self.r.zcard(keys.RELEASES))
            ids = self.r.zrevrange(keys.RELEASES, offset, offset + limit - 1)
            raws = self.r.mget([keys.release(_text(x)) for x in ids]) if ids else []
            return [Release.model_validate_json(raw) for raw in raws if raw], total
        ids = self.r.zrevrange(keys.RELEASES, 0, -1)
        matched: list[Release] = []
        chunk = 200
        for i in range(0, len(ids), chunk):
            raws = self.r.mget([keys.release(_text(x)) for x in ids[i : i + chunk]])
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
        status, raw = self._create(
            keys=[
                keys.dedup(dedup_key),
                keys.release(release.id),
                keys.RELEASES,
                keys.release_events(release.id),
                keys.DUE,
                keys.known_bad(release.application, release.service),
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
    ) -> None:
        """Write a decision atomically (see module docstring); `known_bad` marks a version the decision
        found bad (app/known_bad.py)."""
        rid = release.id
        pipe = self.r.pipeline(transaction=True)
        pipe.set(keys.release(rid), release.model_dump_json())
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
        if stable_version is not None:
            pipe.set(keys.stable(release.application, release.service), stable_version)
        if known_bad is not None:
            pipe.hset(
                keys.known_bad(release.application, release.service), known_bad.version, known_bad.model_dump_json()
            )
        if release.terminal:
            # Clear `active` only if it still points at this release (a newer one may have taken it).
            pipe.eval(_DELETE_IF_EQUAL, 1, keys.active(release.application, release.service), rid)
        pipe.execute()

    # --- per-service pointers -----------------------------------------------------------------------

    def stable_version(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.stable(application, service))
        return _text(v) if v else None

    def active_release(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.active(application, service))
        return _text(v) if v else None

    def set_active(self, application: str, service: str, release_id: str) -> None:
        self.r.set(keys.active(application, service), release_id)

    # --- known-bad versions (app/known_bad.py) -------------------------------------------------------

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

    def due_count(self) -> int:
        return int(self.r.zcard(keys.DUE))

    # --- locks and leases -------------------------------------------------------------------------------

    def release_lock(self, release_id: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        """The per-release lock a tick and a steering action hold while they decide."""
        return self._lock(keys.release_lock(release_id), ttl, wait)

    def release_lease(self, release_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """The per-release lock as a short lease, renewed every `ttl / 3` by a heartbeat thread while
        the holder runs and released at the end: a holder that dies frees the release within `ttl`.
        Yields None when another holds it. A lease whose renewal fails (taken by another, or Redis
        unreachable until the lease would have expired) reports `held() == False`: its holder must
        not act on the release any more."""
        return self._lease(keys.release_lock(release_id), ttl)

    def delivery_lease(self, delivery_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """A hook delivery's lock as a short lease (see `release_lease`): a worker killed mid-call
        frees the delivery within `ttl`, not after the job's whole timeout."""
        return self._lease(keys.delivery_lock(delivery_id), ttl)

    def delivery_lease_left(self, delivery_id: str) -> float:
        """Seconds until the delivery's lease runs out unless its holder renews it (0: not held)."""
        return max(0.0, int(self.r.pttl(keys.delivery_lock(delivery_id))) / 1000)

    @contextmanager
    def _lease(self, key: str, ttl: float) -> Iterator[Lease | None]:
        token = uuid.uuid4().hex
        if not self.r.set(key, token, nx=True, px=int(ttl * 1000)):
            yield None
            return
        lease = Lease(self, key, token, ttl)
        lease.start()
        try:
            yield lease
        finally:
            lease.stop()
            if lease.held():
                self._unlock(keys=[key], args=[token])

    def lock(self, name: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        return self._lock(keys.lock(name), ttl, wait)

    @contextmanager
    def _lock(self, key: str, ttl: float, wait: float) -> Iterator[bool]:
        """A Redis lock with a TTL (a crashed holder frees it). Yields whether it was acquired."""
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
