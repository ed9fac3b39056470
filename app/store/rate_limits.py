"""Rate-limit counters in Sluice's own Redis, for Flask-Limiter (app/web/limits.py).

`limits`' RedisStorage opens its own client from a URL when it is made, at app start. Sluice's
client comes from the process's context instead (Sentinel, password, timeouts and retries as
everywhere else: app/store/connection.py) and is looked up at each call, so a test or the demo that
sets another context counts in its Redis. Counters live under `sluice:ratelimit:` and expire with
their window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from limits.storage import RedisStorage, Storage

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
