"""The fenced commit as one Lua script (`Commits.commit`): the checks and every write of a decision in
one round trip. A MULTI/EXEC needed WATCH and a read first (two more round trips), and any change to
the watched lock (the lease's own heartbeat renewing it) made it start over.

The client lists the writes (`Writes`, recorded with the pipeline methods the commit used); the
script checks, then runs them in order. Redis runs a script atomically, so the checks and the
writes see the same state. The keys written are in ARGV, not KEYS: Sluice runs on one Redis (not a
Cluster; app/store/keys.py has no hash tags), where a script may touch any key.
"""

from __future__ import annotations

from typing import Any

# KEYS[1] the release, KEYS[2] its lock (the release again when unfenced). ARGV[1] our lock token
# ('' = unfenced), ARGV[2] the new seq, ARGV[3] the state the client expects stored ('' = not
# stored: the index moves it listed depend on it), ARGV[4] the release's JSON, then the writes:
# command, argument count, arguments. Answers 1 (written) or {reason, detail} (nothing written).
COMMIT = """
if ARGV[1] ~= '' and redis.call('get', KEYS[2]) ~= ARGV[1] then return {'lost', ''} end
local stored = redis.call('get', KEYS[1])
local state = ''
if stored then
  local old = cjson.decode(stored)
  if tonumber(old['seq']) > tonumber(ARGV[2]) then return {'stale', tostring(old['seq'])} end
  state = old['state']
end
if state ~= ARGV[3] then return {'state', state} end
redis.call('set', KEYS[1], ARGV[4])
local i = 5
while i <= #ARGV do
  local name, n = ARGV[i], tonumber(ARGV[i + 1])
  local args = {}
  for j = 1, n do args[j] = ARGV[i + 1 + j] end
  if name == 'delifeq' then
    if redis.call('get', args[1]) == args[2] then redis.call('del', args[1]) end
  else
    redis.call(name, unpack(args))
  end
  i = i + 2 + n
end
return 1
"""


def _score(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


class Writes:
    """A commit's writes, listed for COMMIT with the redis-py pipeline methods it used before."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def _add(self, name: str, *args: Any) -> None:
        self.args += [name, len(args), *args]

    def set(self, key: str, value: str, nx: bool = False) -> None:
        self._add("set", key, value, *(["NX"] if nx else []))

    def zadd(self, key: str, mapping: dict[str, float], nx: bool = False) -> None:
        pairs = [part for member, score in mapping.items() for part in (_score(score), member)]
        self._add("zadd", key, *(["NX"] if nx else []), *pairs)

    def zrem(self, key: str, *members: str) -> None:
        self._add("zrem", key, *members)

    def sadd(self, key: str, *members: str) -> None:
        self._add("sadd", key, *members)

    def rpush(self, key: str, *values: str) -> None:
        self._add("rpush", key, *values)

    def hset(self, key: str, field: str, value: str) -> None:
        self._add("hset", key, field, value)

    def delete_if_equal(self, key: str, value: str) -> None:
        """Delete `key` only if it still holds `value` (locks.DELETE_IF_EQUAL, inside the commit)."""
        self._add("delifeq", key, value)
