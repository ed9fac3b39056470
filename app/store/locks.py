"""Locks and leases (the `Locks` part of Store): short Redis locks with a TTL, leases renewed by a
heartbeat while their holder runs, and leader leases. A release's lock or lease fences its commits
(`Commits.commit`): this thread's held release locks are kept in `_fences`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import redis

from app.store import keys
from app.store.lease_group import DELETE_MANY_IF_EQUAL, RENEW_MANY, LeaseGroup

log = logging.getLogger("sluice.store")


class LeaseLost(Exception):
    """A commit was refused: the release's lease or lock is no longer held by this thread's holder."""


# Extend a lock's TTL only if it still holds our token (a lease renewal; a leader lease's too).
_RENEW_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""

# Delete a key only if it still holds our value: a lock we own (it may have expired and been taken
# by another), or the `active` pointer of a release that has not been superseded.
DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Locks:
    r: redis.Redis

    def _init_locks(self) -> None:
        self._unlock = self.r.register_script(DELETE_IF_EQUAL)
        self._renew = self.r.register_script(_RENEW_IF_EQUAL)
        self._renew_many = self.r.register_script(RENEW_MANY)
        self._unlock_many = self.r.register_script(DELETE_MANY_IF_EQUAL)
        self._held = threading.local()  # the release locks and leases this thread holds (`_fences`)

    def release_lock(self, release_id: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        """The per-release lock a steering action (and the intake's supersede) holds while it decides;
        its commits on the release are fenced by it (see `commit`)."""
        return self._lock(keys.release_lock(release_id), ttl, wait, fence_for=release_id)

    def _fences(self) -> dict[str, tuple[str, str]]:
        """release id -> (lock key, token) of the release locks and leases this thread holds."""
        fences: dict[str, tuple[str, str]] | None = getattr(self._held, "fences", None)
        if fences is None:
            fences = self._held.fences = {}
        return fences

    def release_lease(self, release_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """The per-release lock as a short lease, renewed every `ttl / 3` by a heartbeat thread while
        the holder runs and released at the end: a holder that dies frees the release within `ttl`.
        Yields None when another holds it. A lease whose renewal fails (taken by another, or Redis
        unreachable until the lease would have expired) reports `held() == False`: its holder must
        not act on the release any more."""
        return self._lease(keys.release_lock(release_id), ttl, fence_for=release_id)

    def release_leases(self, release_ids: list[str], ttl: float = 10.0) -> LeaseGroup:
        """The leases of several releases taken together, as `release_lease` takes one (those another
        holds are not in `taken`): a batch's ticks check theirs out of the group, and its holder
        gives them back with `close()` (app/store/lease_group.py)."""
        return LeaseGroup(self, release_ids, ttl)

    def delivery_lease(self, delivery_id: str, ttl: float = 10.0) -> AbstractContextManager[Lease | None]:
        """A hook delivery's lock as a short lease (see `release_lease`): a worker killed mid-call
        frees the delivery within `ttl`, not after the job's whole timeout."""
        return self._lease(keys.delivery_lock(delivery_id), ttl)

    def delivery_lease_left(self, delivery_id: str) -> float:
        """Seconds until the delivery's lease runs out unless its holder renews it (0: not held)."""
        return max(0.0, int(self.r.pttl(keys.delivery_lock(delivery_id))) / 1000)

    @contextmanager
    def _lease(self, key: str, ttl: float, fence_for: str | None = None) -> Iterator[Lease | None]:
        """A lock renewed by a heartbeat while held. `fence_for`: a release whose commits it fences."""
        token = uuid.uuid4().hex
        if not self.r.set(key, token, nx=True, px=int(ttl * 1000)):
            yield None
            return
        lease = Lease(self, key, token, ttl)
        lease.start()
        if fence_for is not None:
            self._fences()[fence_for] = (key, token)
        try:
            yield lease
        finally:
            if fence_for is not None:
                self._fences().pop(fence_for, None)
            lease.stop()
            if lease.held():
                self._unlock(keys=[key], args=[token])

    def lock(self, name: str, ttl: float = 30.0, wait: float = 0.0) -> AbstractContextManager[bool]:
        return self._lock(keys.lock(name), ttl, wait)

    @contextmanager
    def _lock(self, key: str, ttl: float, wait: float, fence_for: str | None = None) -> Iterator[bool]:
        """A Redis lock with a TTL (a crashed holder frees it). Yields whether it was acquired.
        `fence_for`: a release whose commits this lock fences while held."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        while not acquired and time.monotonic() < deadline:
            time.sleep(0.05)
            acquired = bool(self.r.set(key, token, nx=True, px=int(ttl * 1000)))
        if acquired and fence_for is not None:
            self._fences()[fence_for] = (key, token)
        try:
            yield acquired
        finally:
            if acquired and fence_for is not None:
                self._fences().pop(fence_for, None)
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


class Lease:
    """A lock held for as long as its holder runs: a heartbeat thread renews it every `ttl / 3`.
    `held()` turns False for good when a renewal finds the lock no longer ours, or when renewals
    fail (Redis unreachable) until the lease's last confirmed expiry has passed."""

    def __init__(self, store: Locks, key: str, token: str, ttl: float):
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
