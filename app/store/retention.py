"""Deleting finished releases past their retention, and backfilling the listing indexes.

Finished releases (succeeded, failed, aborted) are kept for a time (by `finished_at`) and up to a
number per service; older ones go with everything they own: events, evaluations, the duplicate
count, the Kubernetes restart baseline, their hook deliveries, their index entries, and the
deploy dedup key while it still names them. Each
release is deleted by one Lua script that re-reads it first, so a release that is not finished
(never the case for an id in the `finished` index, but checked where it is decided) or that still
has a hook delivery waiting to be retried is left alone. Deleting twice deletes nothing: the job
is idempotent and may be run by any number of workers at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from app.core.models import TERMINAL_STATES
from app.store import keys

BATCH = 200  # releases per script call: a call blocks Redis briefly, never for a whole backlog

# KEYS: none (the keys of each release are derived from its JSON, with the same spellings as keys.py).
# ARGV[1]: the prefix; ARGV[2]: '|'-joined terminal states; ARGV[3..]: release ids.
# Returns {deleted, kept}: kept = not finished, or a hook delivery still due.
_DELETE_FINISHED = """
local p = ARGV[1]
local terminal = {}
for s in string.gmatch(ARGV[2], '[^|]+') do terminal[s] = true end
local deleted, kept = 0, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local raw = redis.call('get', p .. 'release:' .. id)
  if not raw then
    redis.call('zrem', p .. 'releases:finished', id)
    redis.call('zrem', p .. 'releases', id)
  else
    local r = cjson.decode(raw)
    local busy = not terminal[r.state]
    local hooks = r.hooks or {}
    if not busy then
      for _, h in ipairs(hooks) do
        if redis.call('zscore', p .. 'due', 'hook:' .. h) then busy = true end
      end
    end
    if busy then
      kept = kept + 1
    else
      for _, h in ipairs(hooks) do redis.call('del', p .. 'delivery:' .. h) end
      redis.call('zrem', p .. 'due', 'tick:' .. id .. ':' .. tostring(r.seq))
      redis.call('del', p .. 'release:' .. id, p .. 'release:' .. id .. ':events',
        p .. 'release:' .. id .. ':evaluations', p .. 'release:' .. id .. ':duplicates',
        p .. 'k8s:restart-baseline:' .. id)
      for _, a in ipairs({'', r.application}) do
        for _, s in ipairs({'', r.service}) do
          if a == '' and s == '' then
            redis.call('zrem', p .. 'releases', id)
          else
            redis.call('zrem', p .. 'releases:index:' .. a .. '|' .. s .. '|', id)
          end
          redis.call('zrem', p .. 'releases:index:' .. a .. '|' .. s .. '|' .. r.state, id)
        end
      end
      redis.call('zrem', p .. 'releases:finished', id)
      redis.call('zrem', p .. 'releases:finished:' .. r.application .. '|' .. r.service, id)
      local dedup = p .. 'dedup:deploy:' .. r.application .. ':' .. r.service .. ':' .. r.target_version
      if redis.call('get', dedup) == id then redis.call('del', dedup) end
      deleted = deleted + 1
    end
  end
end
return {deleted, kept}
"""

# ARGV as for _DELETE_FINISHED. Puts each release in its indexes (keys.release_indexes, FINISHED...).
_BACKFILL = """
local p = ARGV[1]
local terminal = {}
for s in string.gmatch(ARGV[2], '[^|]+') do terminal[s] = true end
local seen = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local raw = redis.call('get', p .. 'release:' .. id)
  if raw then
    local r = cjson.decode(raw)
    local created = tostring(r.created_at)
    for _, a in ipairs({'', r.application}) do
      for _, s in ipairs({'', r.service}) do
        if not (a == '' and s == '') then
          redis.call('zadd', p .. 'releases:index:' .. a .. '|' .. s .. '|', created, id)
        end
        redis.call('zadd', p .. 'releases:index:' .. a .. '|' .. s .. '|' .. r.state, created, id)
      end
    end
    redis.call('sadd', p .. 'releases:services', r.application .. '|' .. r.service)
    if terminal[r.state] then
      local finished = r.finished_at
      if type(finished) ~= 'number' then finished = r.updated_at end
      redis.call('zadd', p .. 'releases:finished', tostring(finished), id)
      redis.call('zadd', p .. 'releases:finished:' .. r.application .. '|' .. r.service, tostring(finished), id)
    end
    seen = seen + 1
  end
end
return seen
"""

# The index layout the stored releases have; a Sluice that finds an older one backfills once.
INDEX_VERSION = "1"


@dataclass
class Pruned:
    deleted: int = 0
    kept: int = 0  # finished but with a hook delivery still due: deleted by a later run

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.deleted + other.deleted, self.kept + other.kept)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Retention:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._delete = client.register_script(_DELETE_FINISHED)
        self._backfill = client.register_script(_BACKFILL)

    def delete(self, release_ids: list[str]) -> Pruned:
        """Delete these finished releases and all they own (ids not finished are kept)."""
        if not release_ids:
            return Pruned()
        deleted, kept = self._delete(args=[keys.PREFIX, "|".join(sorted(TERMINAL_STATES)), *release_ids])
        return Pruned(int(deleted), int(kept))

    def prune(self, now: float, max_age: float, max_per_service: int, batch: int = BATCH) -> Pruned:
        """Delete finished releases that finished more than `max_age` seconds ago, then, per service,
        the oldest finished ones beyond `max_per_service`. In batches of `batch`."""
        total = self._prune_index(keys.FINISHED, lambda card: None, now - max_age, batch)
        for app, svc in self.services():
            total += self._prune_index(
                keys.finished_by_service(app, svc), lambda card: max(0, card - max_per_service), None, batch
            )
        return total

    def _prune_index(self, index: str, excess: Any, before: float | None, batch: int) -> Pruned:
        """The oldest entries of a `finished` index: those scored before `before`, or the first
        `excess(zcard)`. Entries kept (a delivery due) are skipped over, not retried in a loop."""
        done = Pruned()
        skip = 0
        while True:
            if before is not None:
                ids = self.r.zrangebyscore(index, "-inf", f"({before}", start=skip, num=batch)
            else:
                n = excess(int(self.r.zcard(index)))
                if n <= skip:
                    return done
                ids = self.r.zrange(index, skip, min(n, skip + batch) - 1)
            if not ids:
                return done
            step = self.delete([_text(x) for x in ids])
            done += step
            skip += step.kept

    def services(self) -> Iterator[tuple[str, str]]:
        for member in self.r.sscan_iter(keys.SERVICES, count=500):
            app, _, svc = _text(member).partition("|")
            yield app, svc

    # --- backfill ---------------------------------------------------------------------------------

    def indexed(self) -> bool:
        return _text(self.r.get(keys.INDEX_VERSION) or b"") == INDEX_VERSION

    def backfill(self, batch: int = 500) -> int:
        """Put every stored release (from the `releases` zset, which every Sluice wrote) in its
        listing indexes; for releases stored by a Sluice before the indexes. Idempotent, and each
        batch is one script, so a release changing state meanwhile is indexed as it is. Returns how
        many releases it saw."""
        seen, start = 0, 0
        while True:
            ids = [_text(x) for x in self.r.zrange(keys.RELEASES, start, start + batch - 1)]
            if not ids:
                break
            seen += int(self._backfill(args=[keys.PREFIX, "|".join(sorted(TERMINAL_STATES)), *ids]))
            start += batch
        self.r.set(keys.INDEX_VERSION, INDEX_VERSION)
        return seen
