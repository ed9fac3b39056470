"""Releases as stored (the `Releases` part of Store): reading them, and creating one once per
deploy notification (its dedup key), however many callers race.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

from app.core.known_bad import KnownBad
from app.core.models import CheckResult, Event, Release
from app.store import keys, listing
from app.store.listing import ReleasePage
from app.store.rate_limits import Count, run, with_limit

PREFIX = keys.PREFIX
DEDUP_TTL = 30 * 24 * 3600
# A dedup key whose release does not exist is taken over only once it is this old: `create` writes
# both in one script, so a missing release was removed (or a writer died half-way, which only a
# Sluice older than the script could do), and a young one may still be a writer's.
DANGLING_GRACE = 300
# Behind Sentinel, how long a new release's creation waits for a replica to have it (Releases._replicated).
REPLICA_WAIT_MS = 500


class DedupBusy(Exception):
    """A dedup key names a release that is not there, and is too young to be declared dangling."""


# A deploy notification seen before, unless its version is known-bad (KEYS[1], field ARGV[4]): {1, entry}
# when it is (it is refused: nothing counted); {2, release} for the first dedup key of KEYS[2..] that
# names a release, the duplicate counted and the first ARGV[3] kept as events (ARGV[2]); {0} otherwise.
# The receivers' rate limit is counted before it (app/store/rate_limits.py): a retrying CI's one round trip.
_KNOWN_BAD_OR_DUPLICATE = with_limit("""
local bad = redis.call('hget', KEYS[1], ARGV[4])
if bad then return {1, bad} end
for i = 2, #KEYS do
  local id = redis.call('get', KEYS[i])
  local release = id and redis.call('get', ARGV[1] .. 'release:' .. id)
  if release then
    local n = redis.call('incr', ARGV[1] .. 'release:' .. id .. ':duplicates')
    if n <= tonumber(ARGV[3]) then redis.call('rpush', ARGV[1] .. 'release:' .. id .. ':events', ARGV[2]) end
    return {2, release}
  end
end
return {0}
""")

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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def new_release_id() -> str:
    """Time-ordered and unguessable enough: r-<yyyymmddHHMMSS>-<8 hex>."""
    return "r-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Releases:
    r: redis.Redis

    def _init_releases(self) -> None:
        self._known_bad_or_duplicate = self.r.register_script(_KNOWN_BAD_OR_DUPLICATE)
        self._create = self.r.register_script(_CREATE)

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

    def known_bad_or_duplicate(
        self,
        application: str,
        service: str,
        version: str,
        dedup_keys: list[str],
        event: Event,
        keep: int = 10,
        count: Count | None = None,
    ) -> KnownBad | Release | None:
        """For an announcement that is not forced: the version's known-bad entry (it is refused: nothing
        is counted), else the release the first of `dedup_keys` names (the duplicate counted, the
        first `keep` kept as events), else None. One round trip: the hot path of a retrying sender,
        with the receivers' `count` before it (RateLimited: nothing else done)."""
        answer = run(
            self._known_bad_or_duplicate,
            self.r,
            count,
            [keys.known_bad(application, service), *(keys.dedup(k) for k in dedup_keys)],
            [PREFIX, event.model_dump_json(), keep, version],
        )
        kind = int(answer[0])
        if kind == 1:
            return KnownBad.model_validate_json(answer[1])
        return Release.model_validate_json(answer[1]) if kind == 2 else None

    def duplicates(self, release_id: str) -> int:
        return int(self.r.get(keys.release_duplicates(release_id)) or 0)
