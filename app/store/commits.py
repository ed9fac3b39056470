"""Committing a decision (the `Commits` part of Store): the new release state, its evaluations and
events, the hook deliveries it causes and the next tick, in one MULTI/EXEC. A crash before EXEC
leaves the old state (the tick is redone); a crash after leaves a complete record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from app.core.known_bad import KnownBad
from app.core.models import CheckResult, Delivery, Event, Release
from app.store import keys
from app.store.locks import DELETE_IF_EQUAL, LeaseLost, Locks

# A commit retries when the release or its lock changed between reading and writing (WATCH); a
# heartbeat renewing the lease is such a change, so a few attempts are normal, many mean contention.
_COMMIT_ATTEMPTS = 20


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stored_state(raw: Any) -> str | None:
    """The state of a stored release's JSON (None: not stored)."""
    if not raw:
        return None
    return str(json.loads(raw).get("state"))


class Commits(Locks):
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
            self._queue_records(pipe, rid, results, events)
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
                pipe.eval(DELETE_IF_EQUAL, 1, keys.active(release.application, release.service), rid)
            pipe.execute()

    @staticmethod
    def _queue_records(pipe: Any, rid: str, results: Sequence[CheckResult], events: Sequence[Event]) -> None:
        """A decision's evaluations and events appended in order, one RPUSH per list: a tick records
        about seven evaluations, and each command costs the client more CPU than its bytes do."""
        if results:
            pipe.rpush(keys.release_evaluations(rid), *[res.model_dump_json() for res in results])
        if events:
            pipe.rpush(keys.release_events(rid), *[ev.model_dump_json() for ev in events])

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
