"""The watcher on its own: list + watch, 410 Gone, de-duplication with the webhook, the leader lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from app.context import Context
from app.release.intake import IntakeError, start_release
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import Sim, running_watcher, wait_for
from workers.watcher import Watcher, ci_from_annotations

pytestmark = pytest.mark.integration


def releases(ctx: Context) -> list:
    return ctx.store.list_releases()[0]


def test_relists_after_410_gone_and_keeps_finding_versions(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    with running_watcher(ctx, watch_seconds=1.0) as watcher:
        [nw] = watcher.watches
        wait_for(lambda: nw.lists == 1 and nw.resource_version, what="the first list")
        time.sleep(0.4)  # a bookmark moves the resourceVersion along without events
        assert nw.resource_version is not None and int(nw.resource_version) > 100
        api.bookmark_interval = 1e9  # no more bookmarks: the watcher's resourceVersion stays where it is
        time.sleep(0.1)
        api.compact()  # history is gone: the next watch from the old resourceVersion gets 410
        wait_for(lambda: nw.gone >= 1 and nw.lists >= 2, timeout=5, what="a relist after 410 Gone")
        sim.deployment("api", "2.1.0")
        rel = wait_for(lambda: releases(ctx), what="a release after the relist")[0]
    assert rel.target_version == "2.1.0" and rel.source_version == "2.0.0" and rel.trigger == "kubernetes"
    assert ("apps", "deployments", "watch") in api.calls


def test_webhook_first_then_watcher_is_a_duplicate(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    sim.deployment("api", "2.1.0", available=False)
    first = start_release(ctx, "api", "2.1.0", trigger="webhook").release
    with running_watcher(ctx) as watcher:
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the list")
        sim.make_available("api", "2.1.0")
        wait_for(lambda: watcher.started, what="the watcher to announce 2.1.0")
    assert [r.id for r in releases(ctx)] == [first.id]
    assert not watcher.started[0].created and watcher.started[0].release_id == first.id
    dups = [e for e in ctx.store.events(first.id) if e.type == "duplicate"]
    assert len(dups) == 1 and "kubernetes" in dups[0].message


def test_watcher_first_then_webhook_is_a_duplicate(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    with running_watcher(ctx):
        sim.deployment("api", "2.1.0")
        [rel] = wait_for(lambda: releases(ctx), what="a release")
        time.sleep(0.3)  # later events about the same Deployment do not announce it again
    again = start_release(ctx, "api", "2.1.0", trigger="webhook")
    assert not again.created and again.release.id == rel.id
    assert [e.type for e in ctx.store.events(rel.id)].count("duplicate") == 1
    assert len(releases(ctx)) == 1


def test_old_versions_and_the_stable_one_never_start_a_release(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    """A promoted service keeps its previous Deployment around; on a relist (watcher restart) it must
    not be mistaken for a new version."""
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "1.9.0")
    sim.deployment("api", "2.0.0")  # the configured stable version
    sim.deployment("other", "5.0.0")  # not a configured service
    with running_watcher(ctx) as watcher:
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the list")
        time.sleep(0.3)
    assert releases(ctx) == []


def test_only_the_leader_acts_and_a_standby_takes_over(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    ttl = 1.0
    sim.deployment("api", "2.0.0")
    leader, standby = Watcher(ctx, watch_seconds=1.0, leader_ttl=ttl), Watcher(ctx, watch_seconds=1.0, leader_ttl=ttl)
    leader._resign = lambda: None  # type: ignore[method-assign]  # it dies: the lease is not given back
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=w.run, args=(s,), daemon=True) for w, s in zip((leader, standby), stops, strict=True)
    ]
    threads[0].start()
    wait_for(lambda: leader.leading, what="the first watcher to lead")
    threads[1].start()
    try:
        time.sleep(ttl)
        assert leader.leading and not standby.leading
        assert not any(w.lists for w in standby.watches)
        stops[0].set()  # the leader stops renewing its lease
        died = time.monotonic()
        wait_for(lambda: standby.leading, timeout=3 * ttl, what="the standby to take over")
        took = time.monotonic() - died
        print(f"\nstandby took over {took:.2f}s after the leader stopped renewing (TTL {ttl}s)")
        assert took <= ttl * 2.5  # about one TTL; the slack is for a busy machine, not the design
        sim.deployment("api", "2.1.0")
        wait_for(lambda: standby.started, what="the new leader to start the release")
        assert not leader.started
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(timeout=10)


def test_an_event_whose_handling_failed_comes_again(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis blinks while the watcher handles `available`: the watch must resume from before that
    event, not after it (the Deployment may never change again)."""
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    failures = [redis.ConnectionError("Redis blinked")]

    def flaky_start(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return start_release(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("workers.watcher.start_release", flaky_start)
    with running_watcher(ctx, watch_seconds=5.0) as watcher:
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the list")
        sim.deployment("api", "2.1.0")
        # Well before the watch stream ends (5 s): the event itself was delivered again.
        [rel] = wait_for(lambda: releases(ctx), timeout=3, what="a release despite the failure")
    assert not failures and rel.target_version == "2.1.0"


def test_a_release_refused_for_a_passing_reason_is_tried_again_without_a_new_event(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    failures = [IntakeError(503, "cannot learn the stable version from the router")]

    def flaky_start(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return start_release(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("workers.watcher.start_release", flaky_start)
    with running_watcher(ctx, watch_seconds=1.0) as watcher:
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the list")
        sim.deployment("api", "2.1.0")
        [rel] = wait_for(lambda: releases(ctx), timeout=5, what="the release, on a later look")
    assert not failures and rel.target_version == "2.1.0"


def test_a_leader_that_cannot_renew_its_lease_stops_acting_at_once(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another watcher may lead once our renewal fails: the old leader must not start releases
    while its watch threads wind down."""
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    sim.deployment("api", "2.1.0", available=False)
    api.bookmark_interval = 1e9  # as on a real server (about one a minute): nothing else ends the stream
    with running_watcher(ctx, watch_seconds=3.0, leader_ttl=1.0) as watcher:
        wait_for(lambda: watcher.leading and all(w.lists for w in watcher.watches), what="the watcher to lead")

        def redis_down(*args: object) -> bool:
            raise redis.ConnectionError("Redis unreachable")

        monkeypatch.setattr(ctx.store, "try_lead", redis_down)
        time.sleep(0.5)  # two renewal attempts have failed
        sim.make_available("api", "2.1.0")  # arrives on the watch stream that is still open
        time.sleep(1.0)
        assert not watcher.started and releases(ctx) == []


def test_a_stopping_leader_hands_over_its_lease_before_its_watches_wind_down(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    """SIGTERM must not wait for open watch streams (up to a minute) before giving the lease up:
    the pod is killed after its grace period and the standby would wait out the TTL."""
    ctx = make_ctx(account="sluice-watcher")
    sim.deployment("api", "2.0.0")
    api.bookmark_interval = 1e9  # nothing ends the open stream early
    watcher = Watcher(ctx, watch_seconds=5.0, leader_ttl=10.0)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: all(w.lists for w in watcher.watches), what="the watcher to lead and list")
        stop.set()
        wait_for(lambda: not ctx.store.r.exists("sluice:lock:watcher"), timeout=2, what="the lease to be given up")
    finally:
        stop.set()
        thread.join(timeout=20)


def test_ci_context_from_annotations_keeps_only_valid_values() -> None:
    ci = ci_from_annotations(
        {
            "circleci.com/workflow-id": "abc-123",
            "circleci.com/build-number": "not-a-number",
            "circleci.com/build-url": "javascript:alert(1)",
            "circleci.com/job-name": "deploy",
            "unrelated": "x",
        }
    )
    assert ci.model_dump(exclude_none=True) == {"provider": "circleci", "workflow_id": "abc-123", "job_name": "deploy"}
    assert ci_from_annotations({}).provider is None
