"""Replays and backtests as API jobs: asked over HTTP, run by a real RQ worker, read back.

Real Redis, a real Prometheus serving promtool-imported history (tests/support/job_history.py),
releases run live through the tick path at historical times (tests/app/test_replay.run_live),
and RQ's own SimpleWorker running the queued jobs. Bad input gets a 4xx naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.config_file.loader import parse_config
from app.context import Context
from app.store import keys
from app.store import queues as rq_queues
from app.store.jobs import JOBS_QUEUE, LOST
from app.web import create_app
from tests.app.test_replay import run_live
from tests.support.job_history import CONFIG, cart_day, job_context, job_prometheus
from tests.support.job_history import T0 as REPLAY_T0

pytestmark = pytest.mark.integration

TOKEN = "jobs-api-token-0b7e"
READ_TOKEN = "jobs-read-token-55c1"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with job_prometheus(tmp_path_factory.mktemp("prom")) as url:
        yield url


@pytest.fixture
def ctx(redis_url: str, prometheus: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ_TOKEN)
    with job_context(redis_url, prometheus) as context:
        yield context


@pytest.fixture
def client(ctx: Context) -> FlaskClient:
    return create_app().test_client()


def run_queued_jobs(ctx: Context) -> None:
    """What `sluice worker` does with the jobs queue: RQ's SimpleWorker, until the queue is empty."""
    queue = rq_queues.queue(JOBS_QUEUE, ctx.store.r)
    rq_queues.worker([queue], ctx.store.r).work(burst=True)


def error_of(resp: Any, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert isinstance(body, dict) and body.get("error"), body
    text = body["error"] + " " + str(body.get("detail") or "")
    assert "Traceback" not in text
    return text


def test_a_replay_job_from_asked_to_done(ctx: Context, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    live = run_live(ctx, monkeypatch, "1.0.2", REPLAY_T0)
    monkeypatch.undo()  # the engine's clock back to now: the job records real times
    monkeypatch.setenv("SLUICE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ_TOKEN)
    assert live.state == "failed", live.reason

    asked = client.post("/api/v1/replays", json={"release": live.id}, headers=READ)
    assert asked.status_code == 202, asked.get_data(as_text=True)
    job = asked.get_json()
    assert job["status"] == "queued" and not job["duplicate"]
    assert asked.headers["Location"] == job["status_url"] == f"/api/v1/replays/{job['id']}"
    assert job["page_url"] == f"/replays/{job['id']}"

    # A double click: the same job, not a second run.
    again = client.post("/api/v1/replays", json={"release": live.id}, headers=READ)
    assert again.status_code == 200 and again.get_json()["id"] == job["id"] and again.get_json()["duplicate"]
    assert len(rq_queues.queue(JOBS_QUEUE, ctx.store.r)) == 1

    waiting = client.get(job["status_url"], headers=READ).get_json()
    assert waiting["status"] == "queued" and waiting["result"] is None
    assert waiting["input"] == {"release": live.id}

    run_queued_jobs(ctx)
    done = client.get(job["status_url"], headers=READ).get_json()
    assert done["status"] == "done", done["error"]
    assert done["started_at"] <= done["finished_at"]
    report = done["result"]
    assert report["same"] and report["differences"] == 0, report["steps"]
    assert report["recorded_state"] == report["replayed_state"] == "failed"
    assert report["replayed_reason"] == live.reason  # the same failing check at the same step
    assert report["replayed_step"] == live.step + 1
    assert report["release"]["id"] == live.id and report["policy"] == "canary"
    assert [c["name"] for c in report["checks"]] == ["fast"]
    assert report["evaluations"] and {e["name"] for e in report["evaluations"]} >= {"fast"}
    assert len(report["recorded_evaluations"]) == len(ctx.store.evaluations(live.id))
    assert any("not historical" in n for n in report["notes"])

    # The result lives for the configured TTL (jobs.result_ttl: 2h), counted from the request.
    ttl = ctx.store.r.pttl(keys.job(job["id"])) / 1000
    assert 2 * 3600 - 120 < ttl <= 2 * 3600
    assert abs(done["expires_at"] - done["created_at"] - 2 * 3600) < 1


def test_a_replay_under_a_looser_policy_reports_the_difference(
    ctx: Context, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = run_live(ctx, monkeypatch, "1.0.2", REPLAY_T0)
    monkeypatch.undo()
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ_TOKEN)
    asked = client.post("/api/v1/replays", json={"release": live.id, "policy": "lenient"}, headers=READ)
    assert asked.status_code == 202
    run_queued_jobs(ctx)
    report = client.get(asked.headers["Location"], headers=READ).get_json()["result"]
    assert report["policy"] == "lenient" and not report["same"]
    assert report["replayed_state"] != "failed" and report["recorded_state"] == "failed"
    differing = [s for s in report["steps"] if s["differs"]]
    assert len(differing) == report["differences"] >= 1
    assert differing[0]["recorded"] == "fail" and differing[0]["replayed"] != "fail"
    assert any("policy lenient instead of canary" in n for n in report["notes"])


def test_a_backtest_job_finds_and_classifies_every_change(ctx: Context, client: FlaskClient) -> None:
    asked = client.post(
        "/api/v1/backtests",
        json={"service": "cart", "since": "2d", "compare": ["steady", "steady-lenient"]},
        headers=READ,
    )
    assert asked.status_code == 202, asked.get_data(as_text=True)
    location = asked.headers["Location"]
    assert location.startswith("/api/v1/backtests/backtest-")
    assert client.get(location, headers=READ).get_json()["status"] == "queued"

    run_queued_jobs(ctx)
    job = client.get(location, headers=READ).get_json()
    assert job["status"] == "done", job["error"]
    report = job["result"]
    assert report["service"] == "cart" and report["application"] == "store"
    assert report["policies"] == ["steady", "steady-lenient"]
    assert report["until"] - report["since"] == pytest.approx(2 * 86400)
    _, eras = cart_day()
    rows = report["changes"]
    assert [(c["source"], c["target"]) for c in rows] == [("1.0.0", "1.1.0"), ("1.1.0", "1.2.0"), ("1.2.0", "1.2.1")]
    for row, era in zip(rows, eras[1:], strict=True):
        assert abs(row["first_traffic"] - era.start) <= 120, (row, era)
        assert row["outcome"] == ("bad" if era.bad else "good"), row
    bad = rows[1]
    steady, lenient = bad["verdicts"]
    assert (steady["decides"], steady["classification"], steady["check"]) == ("fail", "caught", "errors-vs-stable")
    assert lenient["classification"] == "MISSED REGRESSION" and bad["agree"] is False
    for good in (rows[0], rows[2]):
        assert [v["decides"] for v in good["verdicts"]] == ["promote", "promote"] and good["agree"], good
    tallies = {t["policy"]: t for t in report["tallies"]}
    assert (tallies["steady"]["false_rollbacks"], tallies["steady"]["missed_regressions"]) == (0, 0)
    assert tallies["steady-lenient"]["missed_regressions"] == 1


def test_asking_needs_a_read_token(ctx: Context, client: FlaskClient) -> None:
    assert "token" in error_of(client.post("/api/v1/backtests", json={"service": "cart"}), 401)
    wrong = {"Authorization": "Bearer nope"}
    assert "wrong bearer token" in error_of(client.post("/api/v1/replays", json={"release": "r-1"}, headers=wrong), 401)
    assert error_of(client.get("/api/v1/replays/replay-x"), 401)
    assert len(rq_queues.queue(JOBS_QUEUE, ctx.store.r)) == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/api/v1/replays", {}, 400, "release"),
        ("/api/v1/replays", {"release": "r-nope"}, 404, "no release 'r-nope'"),
        ("/api/v1/replays", {"release": "r x"}, 400, "release"),
        ("/api/v1/replays", {"release": "r-1", "speed": 2}, 400, "speed"),
        ("/api/v1/replays", ["r-1"], 400, "JSON object"),
        ("/api/v1/backtests", {"service": "nope"}, 404, "no service 'nope'"),
        ("/api/v1/backtests", {"service": "cart", "since": "45d"}, 400, "at most 30d"),
        ("/api/v1/backtests", {"service": "cart", "since": "5m"}, 400, "at least 10m"),
        ("/api/v1/backtests", {"service": "cart", "since": "two weeks"}, 400, "since"),
        ("/api/v1/backtests", {"service": "cart", "since": 14}, 400, "since"),
        ("/api/v1/backtests", {"service": "cart", "policy": "nope"}, 400, "`policy`: no policy 'nope'"),
        ("/api/v1/backtests", {"service": "cart", "compare": ["steady", "steady"]}, 400, "two different"),
        ("/api/v1/backtests", {"service": "cart", "compare": ["steady"]}, 400, "compare"),
        ("/api/v1/backtests", {"service": "cart", "compare": ["steady", "nope"]}, 400, "`compare`: no policy 'nope'"),
        (
            "/api/v1/backtests",
            {"service": "cart", "policy": "lenient", "compare": ["lenient", "steady"]},
            400,
            "not both",
        ),
        ("/api/v1/backtests", {"service": "cart", "application": "other"}, 404, "in application 'other'"),
        ("/api/v1/backtests", {"service": "cart", "since": "1d", "until": 5}, 400, "until"),
    ],
)
def test_bad_input_is_refused_with_what_to_fix(
    ctx: Context, client: FlaskClient, path: str, body: Any, status: int, says: str
) -> None:
    assert says in error_of(client.post(path, json=body, headers=READ), status)
    assert len(rq_queues.queue(JOBS_QUEUE, ctx.store.r)) == 0  # nothing half-done


def test_a_replay_of_an_unknown_policy_and_a_body_that_is_not_json(ctx: Context, client: FlaskClient) -> None:
    from app.core.models import Event, Release

    rel = Release(
        id="r-kept",
        application="store",
        namespace="prod",
        service="shop",
        source_version="1.0.0",
        target_version="1.0.1",
        policy="canary",
        created_at=1.0,
        updated_at=1.0,
    )
    ctx.store.create(rel, "dedup-kept", Event(at=1.0, type="created", message="test"))
    says = error_of(client.post("/api/v1/replays", json={"release": "r-kept", "policy": "fast"}, headers=READ), 400)
    assert "no policy 'fast'" in says and "canary" in says
    text = client.post("/api/v1/replays", data="release=r-kept", headers=READ, content_type="text/plain")
    assert "Content-Type: application/json" in error_of(text, 415)


def test_unknown_and_mismatched_job_ids_are_404(ctx: Context, client: FlaskClient) -> None:
    asked = client.post("/api/v1/backtests", json={"service": "cart", "since": "1d"}, headers=READ).get_json()
    assert "no replay" in error_of(client.get(f"/api/v1/replays/{asked['id']}", headers=READ), 404)
    assert "kept 0.0833333 days" in error_of(client.get("/api/v1/backtests/backtest-nope", headers=READ), 404)


def test_a_job_whose_worker_is_gone_says_so(ctx: Context, client: FlaskClient) -> None:
    asked = client.post("/api/v1/backtests", json={"service": "cart", "since": "1d"}, headers=READ).get_json()
    rq_queues.fetch(asked["id"], ctx.store.r).cancel()  # as RQ marks a job it gave up on
    job = client.get(asked["status_url"], headers=READ).get_json()
    assert job["status"] == "failed" and job["error"] == LOST


def test_asking_again_after_a_failure_runs_a_new_job(ctx: Context, client: FlaskClient) -> None:
    body = {"service": "cart", "since": "1d"}
    first = client.post("/api/v1/backtests", json=body, headers=READ).get_json()
    rq_queues.fetch(first["id"], ctx.store.r).cancel()
    assert client.get(first["status_url"], headers=READ).get_json()["status"] == "failed"
    again = client.post("/api/v1/backtests", json=body, headers=READ)
    assert again.status_code == 202 and again.get_json()["id"] != first["id"]


def test_a_job_that_cannot_run_any_more_fails_with_why(ctx: Context, client: FlaskClient) -> None:
    from app.core.models import Event, Release

    rel = Release(
        id="r-gone",
        application="store",
        namespace="prod",
        service="shop",
        source_version="1.0.0",
        target_version="1.0.1",
        policy="canary",
        state="succeeded",
        created_at=REPLAY_T0,
        updated_at=REPLAY_T0,
    )
    ctx.store.create(rel, "dedup-gone", Event(at=REPLAY_T0, type="created", message="test"))
    asked = client.post("/api/v1/replays", json={"release": "r-gone"}, headers=READ).get_json()
    # While it waited, the service left the configuration.
    ctx.config = parse_config(CONFIG.format(prom="http://127.0.0.1:9").replace("      - {name: shop, ", "      # "))
    run_queued_jobs(ctx)
    job = client.get(asked["status_url"], headers=READ).get_json()
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"] == "service 'shop' of application 'store' is not in the configuration", job


def test_sluice_worker_serves_the_jobs_queue(ctx: Context, client: FlaskClient) -> None:
    from workers.worker import run_worker

    asked = client.post("/api/v1/backtests", json={"service": "cart", "since": "1d"}, headers=READ).get_json()
    run_worker(burst=True, with_scheduler=False)
    job = client.get(asked["status_url"], headers=READ).get_json()
    assert job["status"] == "done", job
    assert [c["target"] for c in job["result"]["changes"]] == ["1.1.0", "1.2.0", "1.2.1"]


def test_the_page_of_an_unknown_job_is_a_404_that_says_so(ctx: Context, client: FlaskClient) -> None:
    asked = client.post("/api/v1/replays", json={"release": "r-nope"}, headers=READ)
    assert asked.status_code == 404
    page = client.get("/replays/replay-20260101000000-000000000000", headers=READ)
    assert page.status_code == 404 and "No replay" in page.get_data(as_text=True)
    assert "kept 0.0833333 days" in page.get_data(as_text=True)
    backtest = client.post("/api/v1/backtests", json={"service": "cart", "since": "1d"}, headers=READ).get_json()
    assert client.get(f"/replays/{backtest['id']}", headers=READ).status_code == 404
    assert client.get(backtest["page_url"], headers=READ).status_code == 200


def test_a_full_queue_turns_new_jobs_away_with_retry_after(ctx: Context, client: FlaskClient) -> None:
    from app.web.jobs import MAX_WAITING_JOBS

    for hours in range(MAX_WAITING_JOBS):  # different inputs: no deduplication
        asked = client.post("/api/v1/backtests", json={"service": "cart", "since": f"{hours + 1}h"}, headers=READ)
        assert asked.status_code == 202, asked.get_data(as_text=True)
    refused = client.post("/api/v1/backtests", json={"service": "cart", "since": "2d"}, headers=READ)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "already waiting" in error_of(refused, 429) and "--serves jobs" in error_of(refused, 429)
    assert rq_queues.queue(JOBS_QUEUE, ctx.store.r).count == MAX_WAITING_JOBS  # nothing queued


def test_a_worker_that_serves_releases_only_leaves_jobs_queued(ctx: Context, client: FlaskClient) -> None:
    from workers.worker import run_worker

    asked = client.post("/api/v1/backtests", json={"service": "cart", "since": "1d"}, headers=READ).get_json()
    run_worker(burst=True, with_scheduler=False, serves="releases")
    assert client.get(asked["status_url"], headers=READ).get_json()["status"] == "queued"
    run_worker(burst=True, with_scheduler=False, serves="jobs")
    assert client.get(asked["status_url"], headers=READ).get_json()["status"] == "done"
