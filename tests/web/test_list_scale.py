"""Lists and /metrics read indexes, not every release: the Redis commands a request costs do not
grow with the number of releases (counted with Redis's own INFO commandstats, not timed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from app.context import Context
from app.core.models import Event, Release
from app.store import keys
from app.web import create_app
from tests.support.web import logged_in

pytestmark = pytest.mark.integration

SERVICES = ("web", "api", "worker", "cart")
REQUESTS = (
    "/api/v1/releases",
    "/api/v1/releases?limit=500",
    "/api/v1/releases?service=web",
    "/api/v1/releases?state=failed",
    "/api/v1/releases?application=shop&service=api&state=succeeded&limit=20",
    "/api/v1/releases?state=running&offset=3",
    "/metrics",
)


def seed(ctx: Context, count: int, start: int = 0) -> None:
    """`count` releases over four services; of every ten, one running, two failed, six succeeded."""
    store = ctx.store
    for n in range(start, start + count):
        svc = SERVICES[n % len(SERVICES)]
        release = Release(
            id=f"r-{n:07d}",
            application="shop",
            namespace="default",
            service=svc,
            source_version="1.0.0",
            target_version=f"2.0.{n}",
            policy="default",
            created_at=1_700_000_000.0 + n,
            updated_at=1_700_000_000.0 + n,
        )
        store.create(release, keys.deploy_dedup("shop", svc, release.target_version), Event(at=0, type="c", message=""))
        state = {0: "running", 1: "failed", 2: "failed", 3: "pending"}.get(n % 10, "succeeded")
        if state != "pending":
            finished = None if state == "running" else release.created_at + 30
            store.commit(
                release.model_copy(update={"state": state, "seq": 1, "finished_at": finished}),
                previous_seq=0,
            )


def commands(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(s["calls"])
        for name, s in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }


def cost(ctx: Context, client: FlaskClient, path: str) -> tuple[int, dict[str, int]]:
    ctx.store.r.config_resetstat()
    resp = client.get(path)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    used = commands(ctx.store.r)
    return sum(used.values()), used


def test_lists_and_metrics_cost_the_same_few_commands_at_50_and_5000_releases(ctx: Context) -> None:
    client = logged_in(create_app().test_client())
    seed(ctx, 50)
    small = {path: cost(ctx, client, path) for path in REQUESTS}
    seed(ctx, 4950, start=50)
    assert client.get("/api/v1/releases").get_json()["total"] == 5000
    large = {path: cost(ctx, client, path) for path in REQUESTS}

    for path in REQUESTS:
        print(f"{path}: {small[path][0]} commands at 50 releases, {large[path][0]} at 5,000: {large[path][1]}")
        assert large[path][0] == small[path][0], (path, small[path], large[path])
        # A list: ZCARD, ZREVRANGE, MGET. /metrics: one read per metric family and one per state.
        assert large[path][0] <= (25 if path == "/metrics" else 4), (path, large[path])
        assert not {"scan", "keys"} & set(large[path][1]), large[path]
    # A page of the per-state list is what it says, and its total is the index's size.
    body = client.get("/api/v1/releases?state=failed&limit=500").get_json()
    assert body["total"] == 1000 and len(body["releases"]) == 500
    assert {r["state"] for r in body["releases"]} == {"failed"}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'sluice_releases{state="succeeded"} 3000.0' in metrics
    assert 'sluice_releases{state="running"} 500.0' in metrics


def test_cursor_pages_over_the_api_and_a_bad_cursor_or_limit_is_a_clear_400(ctx: Context) -> None:
    client = logged_in(create_app().test_client())
    seed(ctx, 45)
    seen: list[str] = []
    url = "/api/v1/releases?service=web&limit=4"
    while url:
        body = client.get(url).get_json()
        seen += [r["id"] for r in body["releases"]]
        url = f"/api/v1/releases?service=web&limit=4&cursor={body['next_cursor']}" if body["next_cursor"] else ""
    assert seen == [f"r-{n:07d}" for n in reversed(range(45)) if n % 4 == 0]

    for query, words in (
        ("cursor=garbage", "next_cursor"),
        ("cursor=" + "A" * 300, "cursor"),
        ("limit=0", "between 1 and 500"),
        ("limit=501", "between 1 and 500"),
        ("limit=ten", "integer"),
        ("service=web%7Capi", "service name"),
        ("application=a:b", "application name"),
    ):
        resp = client.get(f"/api/v1/releases?{query}")
        assert resp.status_code == 400, (query, resp.status_code)
        assert words in resp.get_json()["error"], (query, resp.get_json())
