"""Exactly one release per version, whatever arrives concurrently (issue 12): storms of the same
announcement through every intake path, on a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Event, Release
from app.release.intake import IntakeError, start_release
from app.store import keys
from tests.support.fakes import FakePrometheus, FakeRouter, config_text

pytestmark = pytest.mark.integration

THREADS = 20
ROUNDS = 30


@pytest.fixture
def ctx(redis_url: str, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=redis_url, prometheus_url=prom.url)
    context._routers["shop"] = router
    yield context
    context.prometheus.close()
    context.store.r.close()


def _announce(ctx: Context, i: int, version: str) -> str:
    """The calls the receivers and the watcher make: /hooks/deploy (webhook or the orb's provider),
    /hooks/circleci, /hooks/argocd and the Kubernetes watcher."""
    kind = i % 4
    if kind == 0:
        return start_release(ctx, "web", version, trigger="webhook").release.id
    if kind == 1:
        return start_release(ctx, "web", version, "shop", trigger="circleci").release.id
    if kind == 2:
        return start_release(ctx, "web", version, "shop", "prod", trigger="argocd").release.id
    return start_release(ctx, "web", version, "shop", trigger="watcher", fallback_source="1.0.0").release.id


def _storm(ctx: Context, version: str) -> tuple[list[str], list[BaseException]]:
    """THREADS announcements of `version` released at once; the release ids they got, and errors."""
    barrier = threading.Barrier(THREADS)
    ids: list[str] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            ids.append(_announce(ctx, i, version))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return ids, errors


def test_concurrent_identical_announcements_make_one_release(ctx: Context) -> None:
    for rnd in range(ROUNDS):
        ctx.store.r.flushdb()
        ids, errors = _storm(ctx, f"1.1.{rnd}")
        assert not errors, (rnd, errors[:3])
        releases, total = ctx.store.list_releases(limit=100)
        assert total == 1, (rnd, [(r.id, r.state) for r in releases])
        assert set(ids) == {releases[0].id}
        rid = releases[0].id
        types = [e.type for e in ctx.store.events(rid)]
        assert "aborted" not in types and types.count("created") == 1, (rnd, types)
        assert ctx.store.active_release("shop", "web") == rid
        assert ctx.store.duplicates(rid) == THREADS - 1


def _release(rid: str, version: str, at: float) -> Release:
    return Release(
        id=rid,
        application="shop",
        namespace="prod",
        service="web",
        source_version="1.0.0",
        target_version=version,
        policy="canary",
        created_at=at,
        updated_at=at,
    )


def test_dedup_key_is_overwritten_only_when_its_release_is_long_gone(ctx: Context) -> None:
    """The dedup key and the release are written together, so a key without its release means the
    release was removed; a young one may still be a writer's (an older Sluice mid-way), so it stands."""
    created = Event(at=1.0, type="created", message="test")
    dedup = keys.deploy_dedup("shop", "web", "2.0.0")
    ctx.store.r.set(keys.dedup(dedup), "r-young", ex=store_ttl())
    with pytest.raises(IntakeError) as err:
        start_release(ctx, "web", "2.0.0")
    assert err.value.status == 503
    assert ctx.store.r.get(keys.dedup(dedup)) == b"r-young"
    # Long dangling: taken over.
    ctx.store.r.set(keys.dedup(dedup), "r-old", ex=store_ttl() - 3600)
    intake = start_release(ctx, "web", "2.0.0")
    assert intake.created and ctx.store.r.get(keys.dedup(dedup)) == intake.release.id.encode()
    # A key whose release exists is never overwritten.
    rel, made = ctx.store.create(_release("r-other", "2.0.0", 2.0), dedup, created)
    assert not made and rel.id == intake.release.id
    assert ctx.store.get("r-other") is None


def store_ttl() -> int:
    from app.store.release_records import DEDUP_TTL

    return DEDUP_TTL
