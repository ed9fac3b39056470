"""A batch's leases taken together (app/store/lease_group.py), on a real Redis: the same fence as a
lease of its own, renewed by one heartbeat, and given back at the end."""

from __future__ import annotations

import time

import pytest

from app.core.models import Event
from app.store import LeaseLost, Store, keys
from tests.store.test_indexes_and_retention import create, new_release

pytestmark = pytest.mark.integration


def test_a_release_another_holds_is_not_taken_and_the_rest_are_given_back(store: Store) -> None:
    ids = [create(store, new_release(i)).id for i in range(3)]
    store.r.set(keys.release_lock(ids[1]), "another-workers-token", px=10_000)
    group = store.release_leases(ids, ttl=10)
    assert sorted(group.taken) == [ids[0], ids[2]]
    with group.lease(ids[1]) as lease:
        assert lease is None  # its tick is told "busy"
    group.close()
    assert store.r.get(keys.release_lock(ids[0])) is None and store.r.get(keys.release_lock(ids[2])) is None
    assert store.r.get(keys.release_lock(ids[1])) == b"another-workers-token"  # not ours: left alone


def test_a_release_is_lent_to_one_tick_at_a_time(store: Store) -> None:
    rid = create(store, new_release(1)).id
    group = store.release_leases([rid, rid], ttl=10)
    with group.lease(rid) as first:
        assert first is not None and first.held()
        with group.lease(rid) as second:
            assert second is None
    with group.lease(rid) as again:  # the first tick is done: a later one may have it
        assert again is not None
    group.close()


def test_a_tick_whose_batch_lease_was_taken_by_another_cannot_commit(store: Store) -> None:
    release = create(store, new_release(1))
    group = store.release_leases([release.id], ttl=10)
    with group.lease(release.id) as lease:
        assert lease is not None
        # The batch froze past its lease and another worker took the release.
        store.r.set(keys.release_lock(release.id), "another-workers-token", px=10_000)
        with pytest.raises(LeaseLost):
            store.commit(
                release.model_copy(update={"state": "running", "seq": 1}),
                events=[Event(at=1.0, type="started", message="stale")],
                previous_seq=0,
            )
        group.renew()  # the next heartbeat notices too
        assert not lease.held()
    group.close()
    assert store.get(release.id) == release
    assert [e.type for e in store.events(release.id)] == ["created"]
    assert store.r.get(keys.release_lock(release.id)) == b"another-workers-token"


def test_one_heartbeat_keeps_the_whole_batch_leased(store: Store) -> None:
    ids = [create(store, new_release(i)).id for i in range(4)]
    group = store.release_leases(ids, ttl=0.3)  # renewed every 0.1 s
    time.sleep(0.9)  # three times the TTL
    assert all(group.held(rid) for rid in ids)
    assert all(store.r.get(keys.release_lock(rid)) == group.taken[rid].encode() for rid in ids)
    with group.lease(ids[2]) as lease:
        assert lease is not None
        running = store.get(ids[2])
        assert running is not None
        store.commit(running.model_copy(update={"state": "running", "seq": 1}), previous_seq=0)
    group.close()
    assert [store.r.get(keys.release_lock(rid)) for rid in ids] == [None] * 4
