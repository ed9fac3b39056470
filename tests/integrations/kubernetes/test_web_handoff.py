"""The web as deploy/ runs it: SLUICE_WEB_STEERS=false and the `sluice-web` account, which may not write
the router (deploy/rbac.yaml; the fake API server authorizes every call with those rules). Promote,
abort and rollback through the HTTP API are recorded and answered 202 with the release's `Location`;
a real RQ worker as `sluice-worker` then takes them from the urgent queue and the router shows them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.context import Context, set_context
from app.release import handoff
from app.release.intake import start_release
from app.web import create_app
from tests.support.cluster import cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import Sim
from tests.support.web import AUTH, TOKEN
from workers.tick import tick
from workers.worker import run_worker

pytestmark = pytest.mark.integration
ROUTER = "gateway-api"


@pytest.fixture
def web_and_worker(
    make_ctx: Callable[..., Context], sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Context, Context]]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLUICE_WEB_STEERS", "false")
    monkeypatch.setattr(handoff, "WAIT_SECONDS", 0.3)  # no worker runs while the request waits here
    setup_cluster(sim, ROUTER)
    web = make_ctx(ROUTER, web_extra=", stable_version: 1.0.0", account="sluice-web")
    worker = make_ctx(ROUTER, web_extra=", stable_version: 1.0.0", account="sluice-worker")
    yield web, worker
    set_context(None)


def live(api: FakeApiServer) -> dict[str, int]:
    return {v: w for v, w in cluster_weights(api, ROUTER).items() if w}


def post(web: Context, path: str, body: dict[str, Any] | None = None) -> Any:
    set_context(web)
    return create_app().test_client().post(path, json=body or {"reason": "test"}, headers=AUTH)


def get(web: Context, path: str) -> Any:
    set_context(web)
    return create_app().test_client().get(path, headers=AUTH).get_json()


def work(worker: Context) -> None:
    """`sluice worker` as the worker's account, until its queues are empty."""
    set_context(worker)
    run_worker(burst=True, with_scheduler=False)


def started(worker: Context, sim: Sim, version: str) -> str:
    sim.deployment("web", version)
    release = start_release(worker, "web", version).release
    tick(worker, release.id, 0)  # the worker's first tick: 10% on the candidate
    return release.id


def test_promote_abort_and_rollback_are_recorded_by_the_web_and_applied_by_a_worker(
    web_and_worker: tuple[Context, Context], api: FakeApiServer, sim: Sim
) -> None:
    web, worker = web_and_worker
    first = started(worker, sim, "1.1.0")
    assert live(api) == {"1.0.0": 90, "1.1.0": 10}

    resp = post(web, f"/api/v1/releases/{first}/promote")
    body = resp.get_json()
    assert resp.status_code == 202, body
    assert resp.headers["Location"] == f"/api/v1/releases/{first}"
    assert (body["state"], body["weights"], body["weights_applied"]) == ("succeeded", {"1.0.0": 0, "1.1.0": 100}, False)
    assert live(api) == {"1.0.0": 90, "1.1.0": 10}  # the web wrote nothing
    work(worker)
    assert live(api) == {"1.1.0": 100}
    assert get(web, f"/api/v1/releases/{first}")["weights_applied"] is True

    resp = post(web, "/api/v1/services/web/rollback", {"reason": "checkout broken"})
    body = resp.get_json()
    assert resp.status_code == 202, body
    assert (body["state"], body["target_version"], body["weights_applied"]) == ("running", "1.0.0", False)
    assert live(api) == {"1.1.0": 100}
    work(worker)
    assert live(api) == {"1.0.0": 100}
    done = get(web, resp.headers["Location"])
    assert (done["state"], done["weights_applied"]) == ("succeeded", True)
    assert [k["version"] for k in get(web, "/api/v1/services/web/known-bad")["known_bad"]] == ["1.1.0"]

    second = started(worker, sim, "1.2.0")
    assert live(api) == {"1.0.0": 90, "1.2.0": 10}
    resp = post(web, f"/api/v1/releases/{second}/abort")
    assert resp.status_code == 202 and resp.get_json()["state"] == "aborted"
    assert live(api) == {"1.0.0": 90, "1.2.0": 10}
    work(worker)
    assert live(api) == {"1.0.0": 100}
    assert [w.status for w in api.writes if w.status >= 400] == []  # the web never tried to write


def test_an_act_no_worker_took_is_applied_by_the_next_tick(
    web_and_worker: tuple[Context, Context], api: FakeApiServer, sim: Sim
) -> None:
    """Nothing is half-done: the urgent job lost (e.g. Redis flushed the queue), the due tick remains."""
    web, worker = web_and_worker
    release = started(worker, sim, "1.1.0")
    assert post(web, f"/api/v1/releases/{release}/abort").status_code == 202
    worker.store.r.delete("rq:queue:sluice-urgent")
    work(worker)  # nothing queued: the scheduler is off
    assert live(api) == {"1.0.0": 90, "1.1.0": 10}
    seq = worker.store.get(release).seq  # type: ignore[union-attr]
    assert tick(worker, release, seq).kind == "idle"  # what the scheduler runs when the tick is due
    assert live(api) == {"1.0.0": 100}
    assert get(web, f"/api/v1/releases/{release}")["weights_applied"] is True


def test_with_a_steering_web_the_request_applies_it_and_answers_200(
    web_and_worker: tuple[Context, Context], api: FakeApiServer, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local demo and one-process setups: unset, the request steers as before (here as the worker,
    whose account may write)."""
    monkeypatch.delenv("SLUICE_WEB_STEERS")
    _, worker = web_and_worker
    release = started(worker, sim, "1.1.0")
    resp = post(worker, f"/api/v1/releases/{release}/promote")
    assert resp.status_code == 200 and resp.get_json()["weights_applied"] is True
    assert live(api) == {"1.1.0": 100}
