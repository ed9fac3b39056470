"""How a tick did things before a lever, for `benchmarks.profile_tick --without LEVER` (not used by Sluice).

`watched_commit`: the fenced commit as WATCH + MGET, then MULTI/EXEC, retried when the watched
release or lock changed (the lease's own renewal did too), as app/store/commits.py did before its
Lua script.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from app.core.models import Release
from app.store import keys
from app.store.commits import Commits
from app.store.locks import DELETE_IF_EQUAL, LeaseLost


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Pipe:
    """A MULTI pipeline with the one write Writes has that a pipeline does not."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def delete_if_equal(self, key: str, value: str) -> None:
        self.pipe.eval(DELETE_IF_EQUAL, 1, key, value)


def watched_commit(
    self: Commits,
    release: Release,
    results: Any = (),
    events: Any = (),
    deliveries: Any = (),
    next_tick_at: float | None = None,
    previous_seq: int | None = None,
    stable_version: str | None = None,
    known_bad: Any = None,
    also_due: dict[str, float] | None = None,
) -> None:
    fence = self._fences().get(release.id)
    effects = (deliveries, next_tick_at, previous_seq, stable_version, known_bad, also_due)
    for _ in range(20):
        try:
            _watched_once(self, release, fence, results, events, effects)
            return
        except redis.WatchError:
            continue  # the release or the lock changed (a lease renewal does too): check again
    raise LeaseLost(f"release {release.id}: could not commit after 20 concurrent changes")


def _watched_once(self: Commits, release: Release, fence: Any, results: Any, events: Any, effects: tuple) -> None:
    rid = release.id
    with self.r.pipeline(transaction=True) as pipe:
        pipe.watch(keys.release(rid), *([fence[0]] if fence else []))
        stored, holder = pipe.mget(keys.release(rid), fence[0] if fence else keys.release(rid))
        if fence is not None and (holder is None or _text(holder) != fence[1]):
            raise LeaseLost(f"release {rid}: its lease was lost; not committed")
        old_state = str(json.loads(stored).get("state")) if stored else None
        pipe.multi()
        pipe.set(keys.release(rid), release.model_dump_json())
        self._queue_indexes(pipe, release, old_state)
        self._queue_records(pipe, rid, results, events)
        Commits._queue_effects(_Pipe(pipe), release, *effects)  # type: ignore[arg-type]
        pipe.execute()
