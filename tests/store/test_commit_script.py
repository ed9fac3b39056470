"""The commit as one Lua script (app/store/commit_script.py), on a real Redis: what it refuses
leaves the record exactly as it was, and it survives Redis forgetting its scripts."""

from __future__ import annotations

import pytest

from app.core.models import Event, Release
from app.store import LeaseLost, Store, keys
from tests.store.test_indexes_and_retention import create, new_release

pytestmark = pytest.mark.integration


def advance(store: Store, release: Release, state: str = "running") -> Release:
    new = release.model_copy(update={"state": state, "seq": release.seq + 1})
    store.commit(
        new,
        events=[Event(at=1.0, type="step", message=f"seq {new.seq}")],
        next_tick_at=100.0 + new.seq,
        previous_seq=release.seq,
    )
    return new


def test_a_commit_behind_the_stored_seq_is_refused_and_writes_nothing(store: Store) -> None:
    release = create(store, new_release(1))
    late = advance(store, release)  # what a late writer decided from, at seq 1
    current = advance(store, late)  # another holder moved on to seq 2 meanwhile
    with store.release_lease(release.id) as lease:
        assert lease is not None  # the fence holds: only the seq tells this writer is behind
        with pytest.raises(LeaseLost, match="seq 2"):
            store.commit(
                late.model_copy(update={"state": "failed", "reason": "stale"}),
                events=[Event(at=2.0, type="failed", message="stale")],
                next_tick_at=500.0,
                previous_seq=late.seq,
            )
    assert store.get(release.id) == current
    assert [e.message for e in store.events(release.id)][1:] == ["seq 1", "seq 2"]
    assert store.r.zrange(keys.DUE, 0, -1, withscores=True) == [(keys.tick_member(release.id, 2).encode(), 102.0)]
    assert store.list_releases(state="failed") == ([], 0)


def test_a_commit_that_changes_the_state_moves_the_release_between_lists(store: Store) -> None:
    release = create(store, new_release(1))
    running = advance(store, release)
    assert store.list_releases(state="running") == ([running], 1)
    assert store.list_releases(state="pending") == ([], 0)
    done = advance(store, running, "succeeded")
    assert store.list_releases(state="running") == ([], 0)
    assert store.list_releases(state="succeeded") == ([done], 1)


def test_a_commit_after_redis_forgot_its_scripts_still_writes(store: Store) -> None:
    release = create(store, new_release(1))
    advance(store, release)
    store.r.script_flush()  # what a Redis restart without persistence of scripts does
    with store.release_lease(release.id) as lease:
        assert lease is not None
        store.r.script_flush()
        again = advance(store, store.get(release.id) or release)
    assert store.get(release.id) == again
