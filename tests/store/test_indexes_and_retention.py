"""Listing indexes, retention and the commit fence, on a real Redis.

What an operator relies on: a list or a filter shows exactly the releases that match, page after
page; finished releases past retention disappear with everything they own while running ones stay;
a worker that lost its release's lease cannot write a decision over another's.
"""

from __future__ import annotations

import time

import pytest

from app.core.models import CheckResult, Delivery, Event, Release
from app.store import BadCursor, LeaseLost, Store, keys
from workers.retention import RetentionSettingError, RetentionSettings, apply_retention

pytestmark = pytest.mark.integration
DAY = 86400.0


def new_release(n: int, service: str = "web", application: str = "shop", at: float | None = None) -> Release:
    created = (at if at is not None else 1_700_000_000.0) + n
    return Release(
        id=f"r-{n:06d}-{service}",
        application=application,
        namespace="default",
        service=service,
        source_version="1.0.0",
        target_version=f"1.0.{n + 1}",
        policy="default",
        created_at=created,
        updated_at=created,
    )


def create(store: Store, release: Release) -> Release:
    created, was_new = store.create(
        release,
        keys.deploy_dedup(release.application, release.service, release.target_version),
        Event(at=release.created_at, type="created", message="test"),
    )
    assert was_new
    return created


def finish(store: Store, release: Release, state: str, at: float, hook: str | None = None) -> Release:
    """Commit the release as finished at `at`, with an evaluation, an event and (optionally) a delivery."""
    done = release.model_copy(update={"state": state, "finished_at": at, "updated_at": at, "seq": release.seq + 1})
    deliveries = []
    if hook:
        deliveries = [
            Delivery(
                id=f"{release.id}:{state}:{hook}",
                release_id=release.id,
                hook=hook,
                type="webhook",
                event=state,
                target="https://example.test/",
                payload={},
                next_attempt_at=at,
            )
        ]
        done.hooks = [d.id for d in deliveries]
    store.commit(
        done,
        results=[CheckResult(name="errors", step=0, at=at, value=0.0, threshold="< 1%", verdict="pass")],
        events=[Event(at=at, type=state, message=state)],
        deliveries=deliveries,
        previous_seq=release.seq,
    )
    return done


def ids(releases: list[Release]) -> list[str]:
    return [r.id for r in releases]


# --- listing from indexes -------------------------------------------------------------------------------


def test_filters_follow_state_changes(store: Store) -> None:
    web = [create(store, new_release(i, "web")) for i in range(4)]
    api = [create(store, new_release(10 + i, "api", application="back")) for i in range(3)]
    running = web[1].model_copy(update={"state": "running", "seq": 1})
    store.commit(running, previous_seq=0)
    finish(store, web[2], "failed", at=web[2].created_at + 60)
    finish(store, api[0], "succeeded", at=api[0].created_at + 60)

    assert ids(store.list_releases()[0]) == ids(list(reversed(web + api)))
    assert ids(store.list_releases(service="web")[0]) == [web[3].id, web[2].id, web[1].id, web[0].id]
    assert ids(store.list_releases(application="back")[0]) == [api[2].id, api[1].id, api[0].id]
    assert store.list_releases(state="running") == ([running], 1)
    assert ids(store.list_releases(state="pending", service="web")[0]) == [web[3].id, web[0].id]
    assert ids(store.list_releases(state="failed", application="shop", service="web")[0]) == [web[2].id]
    assert store.list_releases(state="failed", service="api") == ([], 0)
    assert store.list_releases(service="nosuch") == ([], 0)
    assert store.metrics.releases_by_state(["pending", "running", "failed", "succeeded"]) == {
        "pending": 4,
        "running": 1,
        "failed": 1,
        "succeeded": 1,
    }


def test_cursor_walks_every_release_once_while_new_ones_arrive(store: Store) -> None:
    for i in range(23):
        create(store, new_release(i))
    seen: list[str] = []
    page = store.release_page(limit=5)
    pages = 1
    while True:
        seen += ids(page.releases)
        # New releases arriving meanwhile do not shift the pages (an offset would show one twice).
        create(store, new_release(1000 + pages))
        if page.next_cursor is None:
            break
        page = store.release_page(limit=5, cursor=page.next_cursor)
        pages += 1
    assert seen == [new_release(i).id for i in reversed(range(23))]
    assert pages == 5


def test_cursor_handles_releases_created_at_the_same_instant(store: Store) -> None:
    for i in range(7):
        create(store, new_release(i).model_copy(update={"created_at": 1_700_000_000.0}))
    seen: list[str] = []
    cursor = None
    while True:
        page = store.release_page(limit=2, cursor=cursor)
        seen += ids(page.releases)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(new_release(i).id for i in range(7)) and len(seen) == 7


@pytest.mark.parametrize("cursor", ["", "nonsense", "bm9wZQ", "MS4wfHgtMQ", "aW5mfHItMQ"])
def test_a_cursor_not_handed_out_is_refused(store: Store, cursor: str) -> None:
    with pytest.raises(BadCursor, match="next_cursor"):
        store.release_page(cursor=cursor)


def test_backfill_indexes_releases_stored_before_the_indexes(store: Store) -> None:
    old = [create(store, new_release(i, "web" if i % 2 else "api")) for i in range(6)]
    finish(store, old[1], "succeeded", at=old[1].created_at + 5)
    # What a Sluice older than the indexes left: the releases and the `releases` zset only.
    for key in store.r.scan_iter(keys.PREFIX + "releases:*"):
        store.r.delete(key)
    assert store.list_releases(service="web") == ([], 0)
    assert not store.retention.indexed()

    assert store.retention.backfill(batch=4) == 6
    assert store.retention.indexed()
    assert ids(store.list_releases(service="web")[0]) == [old[5].id, old[3].id, old[1].id]
    assert ids(store.list_releases(state="succeeded")[0]) == [old[1].id]
    assert store.retention.backfill() == 6  # again: the same indexes
    assert store.list_releases(state="pending")[1] == 5


# --- retention ------------------------------------------------------------------------------------------


def release_keys(store: Store, release_id: str) -> list[bytes]:
    """Every key that names the release, and every index or schedule entry for it."""
    found = [k for k in store.r.scan_iter("*") if release_id.encode() in k]
    for key in store.r.scan_iter(keys.PREFIX + "*"):
        kind = store.r.type(key)
        if kind == b"zset" and store.r.zscore(key, release_id) is not None:
            found.append(key)
        if kind == b"zset" and any(release_id.encode() in m for m in store.r.zrange(key, 0, -1)):
            found.append(key)
    return found


def test_retention_deletes_old_finished_releases_with_all_they_own(store: Store) -> None:
    now = time.time()
    old_ok = finish(store, create(store, new_release(1, at=now - 100 * DAY)), "succeeded", now - 95 * DAY, "ci")
    old_failed = finish(store, create(store, new_release(2, at=now - 100 * DAY)), "failed", now - 91 * DAY)
    recent = finish(store, create(store, new_release(3, at=now - 10 * DAY)), "aborted", now - 9 * DAY)
    running = create(store, new_release(4, at=now - 120 * DAY))
    running = running.model_copy(update={"state": "running", "seq": 1})
    store.commit(running, previous_seq=0, next_tick_at=now + 5)
    store.unschedule_delivery(old_ok.hooks[0])  # delivered: nothing due any more
    assert store.get_delivery(old_ok.hooks[0]) is not None

    assert apply_retention(store, RetentionSettings(max_age=90 * DAY, max_per_service=500), now=now) == 2

    for gone in (old_ok, old_failed):
        assert store.get(gone.id) is None
        assert release_keys(store, gone.id) == []
    assert store.get_delivery(old_ok.hooks[0]) is None
    assert store.find_dedup(keys.deploy_dedup("shop", "web", old_ok.target_version)) is None
    assert store.find_dedup(keys.deploy_dedup("shop", "web", recent.target_version)) == recent
    assert store.get(recent.id) == recent and store.events(recent.id) and store.evaluations(recent.id)
    assert store.get(running.id) == running  # running for 120 days: never touched
    assert ids(store.list_releases()[0]) == [recent.id, running.id]
    assert store.metrics.releases_by_state(["succeeded", "failed", "aborted", "running"]) == {
        "succeeded": 0,
        "failed": 0,
        "aborted": 1,
        "running": 1,
    }
    # Idempotent: a second run (or a second worker) finds nothing more to do.
    assert apply_retention(store, RetentionSettings(max_age=90 * DAY, max_per_service=500), now=now) == 0


def test_retention_keeps_at_most_n_finished_per_service_newest_first(store: Store) -> None:
    now = time.time()
    web = [finish(store, create(store, new_release(i, "web", at=now)), "succeeded", now + i) for i in range(30)]
    for i in range(3):
        finish(store, create(store, new_release(100 + i, "api", at=now)), "failed", now + i)
    pending = [create(store, new_release(200 + i, "web", at=now)) for i in range(5)]
    settings = RetentionSettings(max_age=90 * DAY, max_per_service=10)

    assert store.retention.prune(now, settings.max_age, settings.max_per_service, batch=7).deleted == 20
    assert ids(store.list_releases(service="web", state="succeeded", limit=100)[0]) == ids(web[:-11:-1])
    assert store.list_releases(service="api")[1] == 3
    assert store.list_releases(service="web", state="pending")[1] == len(pending)
    assert store.retention.prune(now, settings.max_age, settings.max_per_service).deleted == 0


def test_retention_waits_for_a_hook_delivery_still_being_retried(store: Store) -> None:
    now = time.time()
    old = finish(store, create(store, new_release(1, at=now - 100 * DAY)), "failed", now - 95 * DAY, "pager")
    older = finish(store, create(store, new_release(2, at=now - 100 * DAY)), "failed", now - 96 * DAY)
    assert store.retention.prune(now, 90 * DAY, 500).deleted == 1  # `older`; `old` still has a delivery due
    assert store.get(older.id) is None and store.get(old.id) == old
    store.unschedule_delivery(old.hooks[0])
    assert store.retention.prune(now, 90 * DAY, 500).deleted == 1
    assert store.get(old.id) is None


def test_retention_settings_from_the_environment() -> None:
    assert RetentionSettings.from_env({}) == RetentionSettings(max_age=90 * DAY, max_per_service=500)
    assert RetentionSettings.from_env(
        {"SLUICE_RETENTION": "14d", "SLUICE_RETENTION_MAX_PER_SERVICE": "50"}
    ) == RetentionSettings(max_age=14 * DAY, max_per_service=50)
    assert RetentionSettings.from_env({"SLUICE_RETENTION": "12h"}).max_age == 12 * 3600
    with pytest.raises(RetentionSettingError, match="'90d'"):
        RetentionSettings.from_env({"SLUICE_RETENTION": "3 months"})
    with pytest.raises(RetentionSettingError, match="at least 1"):
        RetentionSettings.from_env({"SLUICE_RETENTION_MAX_PER_SERVICE": "0"})


# --- fence at commit ------------------------------------------------------------------------------------


def test_a_holder_that_lost_its_lease_cannot_commit(store: Store) -> None:
    release = create(store, new_release(1))
    with store.release_lease(release.id, ttl=10) as lease:
        assert lease is not None
        # The lease ran out (the worker froze) and another worker took the release.
        store.r.set(keys.release_lock(release.id), "another-holders-token", px=10_000)
        running = release.model_copy(update={"state": "running", "seq": 1, "reason": "stale decision"})
        with pytest.raises(LeaseLost):
            store.commit(running, events=[Event(at=1.0, type="started", message="stale")], previous_seq=0)
    assert store.get(release.id) == release  # nothing written
    assert [e.type for e in store.events(release.id)] == ["created"]
    assert store.list_releases(state="running") == ([], 0)


def test_a_holder_whose_lease_expired_unclaimed_cannot_commit(store: Store) -> None:
    release = create(store, new_release(1))
    with store.release_lease(release.id, ttl=10) as lease:
        assert lease is not None
        store.r.delete(keys.release_lock(release.id))  # what the expiry does
        with pytest.raises(LeaseLost):
            store.commit(release.model_copy(update={"state": "running", "seq": 1}), previous_seq=0)
    assert store.get(release.id) == release


def test_the_holder_commits_while_its_lease_is_renewed(store: Store) -> None:
    release = create(store, new_release(1))
    with store.release_lease(release.id, ttl=0.3) as lease:  # renewed every 0.1 s meanwhile
        assert lease is not None
        for seq in range(1, 30):
            release = release.model_copy(update={"state": "running", "seq": seq})
            store.commit(release, previous_seq=seq - 1)
            time.sleep(0.01)
    assert store.get(release.id) == release
    assert store.list_releases(state="running") == ([release], 1)
