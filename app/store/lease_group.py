"""A batch's release leases, taken together (`Locks.release_leases`): one pipeline of SET NX PX for
the batch, ONE heartbeat thread renewing them all in one script call per beat, and one script call
releasing them at the end. A lease per tick cost its own SET, unlock and heartbeat thread (~10% of a
tick's CPU, benchmarks/RESULTS.md "Tick CPU, round 2").

Each tick checks its release's lease out of the group (`lease`), which fences its commits on its
own thread as `release_lease` does; a release checked out by one tick is not lent to a second tick
of it at the same time (that one is told "busy", as when another worker holds it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis

from app.store import keys

if TYPE_CHECKING:
    from app.store.locks import Locks

log = logging.getLogger("sluice.store")

# KEYS: the leases' lock keys; ARGV[1] the TTL in ms, ARGV[2..] their tokens. Extends each still
# ours; answers 1 or 0 for each, in order.
RENEW_MANY = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i + 1] then
    held[i] = redis.call('pexpire', key, ARGV[1])
  else
    held[i] = 0
  end
end
return held
"""

# KEYS: lock keys; ARGV: their tokens. Deletes each that still holds our token.
DELETE_MANY_IF_EQUAL = """
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i] then redis.call('del', key) end
end
return 1
"""


class GroupLease:
    """One release's lease, lent by its group to the tick that checked it out."""

    def __init__(self, group: LeaseGroup, release_id: str):
        self.group, self.release_id = group, release_id

    def held(self) -> bool:
        return self.group.held(self.release_id)


class LeaseGroup:
    """The leases a batch took (`taken`: release id -> token), renewed every `ttl / 3` while it runs.
    A release's `held` turns False for good when a renewal finds its lock no longer ours, or when
    renewals fail (Redis unreachable) until the leases' last confirmed expiry has passed."""

    def __init__(self, store: Locks, release_ids: list[str], ttl: float):
        self.store, self.ttl = store, ttl
        tokens = {rid: uuid.uuid4().hex for rid in dict.fromkeys(release_ids)}
        self.expires = time.monotonic() + ttl  # conservative: set before the SETs
        with store.r.pipeline(transaction=False) as pipe:
            for rid, token in tokens.items():
                pipe.set(keys.release_lock(rid), token, nx=True, px=int(ttl * 1000))
            answers = pipe.execute()
        self.taken = {rid: token for (rid, token), ok in zip(tokens.items(), answers, strict=True) if ok}
        self._lost: set[str] = set()
        self._out: set[str] = set()  # checked out by a tick now
        self._mutex = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="leases of a batch", daemon=True)
        if self.taken:
            self._thread.start()

    def held(self, release_id: str) -> bool:
        return release_id in self.taken and release_id not in self._lost and time.monotonic() < self.expires

    @contextmanager
    def lease(self, release_id: str) -> Iterator[GroupLease | None]:
        """The release's lease for one tick (None: not taken by the batch, or lent to another tick now)."""
        with self._mutex:
            if release_id not in self.taken or release_id in self._out:
                lent = False
            else:
                lent = True
                self._out.add(release_id)
        if not lent:
            yield None
            return
        fences = self.store._fences()
        fences[release_id] = (keys.release_lock(release_id), self.taken[release_id])
        try:
            yield GroupLease(self, release_id)
        finally:
            fences.pop(release_id, None)
            with self._mutex:
                self._out.discard(release_id)

    def renew(self) -> None:
        """One beat: every lease still ours extended in one script call."""
        live = [rid for rid in self.taken if rid not in self._lost]
        if not live:
            return
        sent = time.monotonic()
        try:
            answers = self.store._renew_many(
                keys=[keys.release_lock(rid) for rid in live],
                args=[int(self.ttl * 1000), *(self.taken[r] for r in live)],
            )
        except redis.RedisError as exc:
            log.warning("could not renew a batch's leases: %s", exc)
            return
        for rid, ok in zip(live, answers, strict=True):
            if not ok:
                log.warning("lost lease %s", keys.release_lock(rid))
                self._lost.add(rid)
        self.expires = sent + self.ttl

    def close(self) -> None:
        """Stop renewing and give back every lease still ours, in one script call."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self.ttl)
        live = [rid for rid in self.taken if self.held(rid)]
        if live:
            self.store._unlock_many(keys=[keys.release_lock(rid) for rid in live], args=[self.taken[r] for r in live])

    def _beat(self) -> None:
        while not self._stopping.wait(self.ttl / 3):
            self.renew()
