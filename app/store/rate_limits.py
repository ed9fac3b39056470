"""Rate-limit counters in Sluice's own Redis (app/web/limits.py): Flask-Limiter's storage for the login,
and the receivers' sliding-window counter (`hit`, below).

`limits`' RedisStorage opens its own client from a URL when it is made, at app start. Sluice's
client comes from the process's context instead (Sentinel, password, timeouts and retries as
everywhere else: app/store/connection.py) and is looked up at each call, so a test or the demo that
sets another context counts in its Redis. Counters live under `sluice:ratelimit:` and expire with
their window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from limits.storage import RedisStorage, Storage
from redis.commands.core import Script

if TYPE_CHECKING:
    from app.store import Store

SCHEME = "sluice-context"
PREFIX = "sluice:ratelimit"


class ContextRedisStorage(RedisStorage):
    """RedisStorage on the Redis client of the Store `store()` answers, asked at each call."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, store: Callable[[], Store] | None = None, **options: Any):
        Storage.__init__(self, uri, wrap_exceptions=False)  # not RedisStorage's: it would connect now
        if store is None:
            raise ValueError("ContextRedisStorage needs `store`, a function answering the process's Store")
        self._store = store
        self.key_prefix = PREFIX
        self.target_server = "redis"
        self.dependency = redis

    @property
    def storage(self) -> redis.Redis:
        return self._store().r

    def initialize_storage(self, _uri: str) -> None:
        """Nothing to do at start: each script is bound to the client of the call (see __getattr__)."""

    _SCRIPTS = {
        "lua_moving_window": RedisStorage.SCRIPT_MOVING_WINDOW,
        "lua_acquire_moving_window": RedisStorage.SCRIPT_ACQUIRE_MOVING_WINDOW,
        "lua_clear_keys": RedisStorage.SCRIPT_CLEAR_KEYS,
        "lua_incr_expire": RedisStorage.SCRIPT_INCR_EXPIRE,
        "lua_sliding_window": RedisStorage.SCRIPT_SLIDING_WINDOW,
        "lua_acquire_sliding_window": RedisStorage.SCRIPT_ACQUIRE_SLIDING_WINDOW,
    }

    def __getattr__(self, name: str) -> Any:
        # RedisStorage's methods call self.lua_*(keys, args); a Script runs on the client it was
        # registered with, so each call registers it on the current client (EVALSHA, then EVAL once).
        script = ContextRedisStorage._SCRIPTS.get(name)
        if script is None:
            raise AttributeError(name)
        return self.storage.register_script(script)


# --- the receivers' budget: a sliding-window counter, folded into each path's first Redis effect --------
#
# Flask-Limiter's moving window cost about a third of a duplicate webhook's CPU (its own bookkeeping
# more than its Redis call). This counts each limit in two fixed windows, the current one and the one
# before, and weighs the one before by how much of it still overlaps the sliding window (Cloudflare's
# "sliding window counter"): two small keys per limit, no per-request sorted set. It assumes the
# previous window's requests were spread evenly; a burst at its end is undercounted by at most what
# the weight drops in the time the burst took, never more than the limit over one window. Refused
# requests are not counted, as with the moving window.
#
# The count is a prelude (`with_limit`) put before the script of a request's first Redis effect (the
# known-bad/duplicate lookup, a once-only claim, a signed id's replay claim), so a webhook costs one
# round trip, not two; a request whose path makes no Redis effect is counted by the prelude alone
# (`COUNT_ONLY`) when it ends. A refused request stops in the prelude: the script's own effects are
# never made.
#
# KEYS: per limit, its current window's counter then the previous one's; then the script's own keys.
# ARGV: the number of limits (0: nothing counted here), the position in the window (ms), per limit
# its amount and window (ms); then the script's own arguments. The script sees its own keys and
# arguments as KEYS and ARGV (locals shadowing Redis's). Refused: {-1, i, cur, prev}, the 1-based
# index of the first limit the request would exceed with that limit's current and previous counts.
PRELUDE = """
local limits = tonumber(ARGV[1])
if limits > 0 then
  local at = tonumber(ARGV[2])
  for i = 1, limits do
    local amount, window = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
    local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
    local prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
    local weight = (window - (at % window)) / window
    if cur + 1 + prev * weight > amount then
      return {-1, i, cur, prev}
    end
  end
  for i = 1, limits do
    local window = tonumber(ARGV[2 + 2 * i])
    if redis.call('INCR', KEYS[2 * i - 1]) == 1 then
      redis.call('PEXPIRE', KEYS[2 * i - 1], 2 * window)
    end
  end
end
local KEYS, ARGV = {unpack(KEYS, 2 * limits + 1)}, {unpack(ARGV, 2 * limits + 3)}
"""
REFUSED = -1


def with_limit(script: str) -> str:
    """`script` with the receivers' count before it (see PRELUDE for its keys and arguments)."""
    return PRELUDE + script


COUNT_ONLY = with_limit("return 0")


@dataclass(frozen=True)
class Window:
    """A limit: `amount` requests per `seconds` (whole seconds, as `limits` parses them)."""

    amount: int
    seconds: int
    text: str  # as the operator wrote it ("300 per 1 minute"): said back in the 429


@dataclass(frozen=True)
class Refused:
    window: Window
    retry_after: int  # seconds, 1..the window: until the request would be counted


class RateLimited(Exception):
    """A request refused by its budget: nothing else of it was done (answered 429 with Retry-After)."""

    def __init__(self, refused: Refused):
        super().__init__(refused.window.text)
        self.refused = refused


@dataclass
class Count:
    """One request of `who` to count against every window of `scope` (all or none are counted), once:
    `done` once a script has counted it (or refused it)."""

    scope: str
    who: str
    windows: list[Window]
    now: float
    done: bool = False


def _prefix(count: Count | None) -> tuple[list[str], list[int]]:
    """The prelude's keys and arguments for `count` (none, when it is absent or already counted)."""
    if count is None or count.done:
        return [], [0, 0]
    ms = int(count.now * 1000)
    keys: list[str] = []
    args: list[int] = [len(count.windows), ms]
    for w in count.windows:
        index = ms // (w.seconds * 1000)
        base = f"{PREFIX}:{count.scope}:{w.seconds}:{count.who}"
        keys += [f"{base}:{index}", f"{base}:{index - 1}"]
        args += [w.amount, w.seconds * 1000]
    return keys, args


def run(script: Script, client: redis.Redis, count: Count | None, keys: list[Any], args: list[Any]) -> Any:
    """Run a script made with `with_limit`, counting `count` first (if it was not counted yet); its own
    answer, or RateLimited when the count is refused (then the script made no effect). Raises
    redis.RedisError when Redis cannot be asked (the count is then not done)."""
    pk, pa = _prefix(count)
    answer = script(keys=pk + keys, args=pa + args, client=client)
    if count is None or not pk:
        return answer
    count.done = True
    if isinstance(answer, list) and answer and answer[0] == REFUSED:
        i, cur, prev = (int(x) for x in answer[1:4])
        window = count.windows[i - 1]
        raise RateLimited(Refused(window, _retry_after(window, cur, prev, count.now)))
    return answer


def count_now(client: redis.Redis, count: Count) -> None:
    """Count a request now, in a round trip of its own (no-op when counted already): for a path that
    ends before any Redis effect, or whose first effect is not a script with the prelude. RateLimited
    when a window is full."""
    run(_count_only(client), client, count, [], [])


def hit(client: redis.Redis, scope: str, who: str, windows: list[Window], now: float) -> Refused | None:
    """Count one request of `who` against every window of `scope` (all or none are counted);
    a Refused when one is full. One round trip. Raises redis.RedisError when Redis cannot be asked."""
    try:
        count_now(client, Count(scope, who, windows, now))
    except RateLimited as exc:
        return exc.refused
    return None


def _count_only(client: redis.Redis) -> Script:
    """The script, made once (its SHA1 too); each call names its client, so the context's client is used."""
    if not _SCRIPTS:
        _SCRIPTS.append(client.register_script(COUNT_ONLY))
    return _SCRIPTS[0]


_SCRIPTS: list[Script] = []


def _retry_after(w: Window, cur: int, prev: int, now: float) -> int:
    """Seconds until one more request fits: the previous window's weight must fall (or, when the
    current window alone is full, the current window end and its count decay in turn). At most the
    window: a client retrying then is told again, with what is left."""
    into = now % w.seconds
    if cur + 1 <= w.amount and prev:
        # prev * (seconds - t) / seconds + cur + 1 <= amount  =>  t >= seconds * (1 - (amount - cur - 1) / prev)
        wait = w.seconds * (1 - (w.amount - cur - 1) / prev) - into
    else:
        wait = w.seconds - into + (w.seconds * (1 - (w.amount - 1) / cur) if cur else 0)
    return max(1, min(w.seconds, math.ceil(wait)))
