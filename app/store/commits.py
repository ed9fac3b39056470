"""Committing a decision (the `Commits` part of Store): the new release state, its evaluations and
events, the hook deliveries it causes and the next tick, in one Lua script (app/store/commit_script.py)
that checks the fence and writes everything atomically. A crash before it runs leaves the old state
(the tick is redone); a crash after leaves a complete record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.known_bad import KnownBad
from app.core.models import CheckResult, Delivery, Event, Release
from app.store import keys
from app.store.commit_script import COMMIT, Writes
from app.store.locks import LeaseLost, Locks

# The script refuses a commit whose expected stored state (which the index moves depend on) is
# not the stored one, and says which it is: a second attempt normally succeeds; more mean the state
# is changing under us (an unfenced writer).
_COMMIT_ATTEMPTS = 5


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        (a holder that lost it, and another took it, cannot commit). Never over a newer release: one
        stored at a higher seq than `release.seq` is left as it is. Raises LeaseLost then; nothing
        is written."""
        rid = release.id
        fence = self._fences().get(rid)
        writes = Writes()
        self._queue_records(writes, rid, results, events)
        self._queue_effects(
            writes, release, deliveries, next_tick_at, previous_seq, stable_version, known_bad, also_due
        )
        head = [release.seq, release.model_dump_json()]
        lock_key, token = fence if fence else (keys.release(rid), "")
        expected: str | None = release.state  # mostly a tick that keeps the state: nothing to move
        for _ in range(_COMMIT_ATTEMPTS):
            indexes = Writes()
            self._queue_indexes(indexes, release, expected)
            answer = self._commit_script(
                keys=[keys.release(rid), lock_key],
                args=[token, head[0], expected or "", head[1], *indexes.args] + writes.args,
            )
            if not isinstance(answer, list):
                return
            reason, detail = _text(answer[0]), _text(answer[1])
            if reason == "lost":
                raise LeaseLost(f"release {rid}: its lease was lost (another holder may act on it); not committed")
            if reason == "stale":
                raise LeaseLost(f"release {rid}: stored at seq {detail}, newer than this commit's {release.seq}")
            expected = detail or None  # the stored state: list the index moves from it
        raise LeaseLost(f"release {rid}: its state kept changing during {_COMMIT_ATTEMPTS} attempts; not committed")

    @property
    def _commit_script(self) -> Any:
        script = getattr(self, "_commit_script_loaded", None)
        if script is None:  # redis-py's Script: EVALSHA, and on NOSCRIPT (a restarted Redis) loads it again
            script = self._commit_script_loaded = self.r.register_script(COMMIT)
        return script

    @staticmethod
    def _queue_effects(
        writes: Writes,
        release: Release,
        deliveries: Sequence[Delivery],
        next_tick_at: float | None,
        previous_seq: int | None,
        stable_version: str | None,
        known_bad: KnownBad | None,
        also_due: dict[str, float] | None,
    ) -> None:
        rid = release.id
        for d in deliveries:
            # SET NX: a redone tick that re-creates the same delivery id does not deliver twice.
            writes.set(keys.delivery(d.id), d.model_dump_json(), nx=True)
            writes.zadd(keys.DUE, {keys.hook_member(d.id): d.next_attempt_at or release.updated_at}, nx=True)
        if previous_seq is not None:
            writes.zrem(keys.DUE, keys.tick_member(rid, previous_seq))
        if next_tick_at is not None:
            writes.zadd(keys.DUE, {keys.tick_member(rid, release.seq): next_tick_at})
        if also_due:
            writes.zadd(keys.DUE, also_due, nx=True)
        if stable_version is not None:
            writes.set(keys.stable(release.application, release.service), stable_version)
        if known_bad is not None:
            writes.hset(
                keys.known_bad(release.application, release.service), known_bad.version, known_bad.model_dump_json()
            )
        if release.terminal:
            # Clear `active` only if it still points at this release (a newer one may have taken it).
            writes.delete_if_equal(keys.active(release.application, release.service), rid)

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
