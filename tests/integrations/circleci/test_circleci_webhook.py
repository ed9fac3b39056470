"""`POST /hooks/circleci`: signature v1, de-duplication, which events start a release, the version
template, and the CI context the release carries. Real Redis; the Flask app in-process."""

from __future__ import annotations

import json

import pytest

from app.context import Context
from app.store import PREFIX
from app.web import create_app
from app.web.receivers import claim_event
from integrations.circleci.events import VERSION_FIELDS, render_version, sign, verify_signature
from tests.support.ci import SLUG, WEBHOOK_SECRET, get, job_completed, signed

pytestmark = pytest.mark.integration


def test_documented_signature_test_vector() -> None:
    expected = "734cc62f32841568f45715aeb9f4d7891324e6d948e4c6c60c0621cdac48623a"
    assert sign("secret", b"hello world") == expected
    assert verify_signature("secret", f"v1={expected}", b"hello world")
    assert verify_signature("secret", f"v2=whatever, v1={expected.upper()}", b"hello world")
    assert not verify_signature("secret", f"v1={expected}", b"hello world!")
    assert not verify_signature("other", f"v1={expected}", b"hello world")
    assert not verify_signature("secret", f"v2={expected}", b"hello world")  # only v1 is checked
    assert not verify_signature("secret", "", b"hello world")


def test_version_template_reads_only_known_fields() -> None:
    payload = job_completed(number=42)
    assert render_version("1.0.{pipeline.number}", payload) == "1.0.42"
    assert render_version("{pipeline.vcs.revision_short}", payload) == "f9b5a4a"
    assert "pipeline.vcs.revision_short" in VERSION_FIELDS
    with pytest.raises(ValueError, match="unknown field"):
        render_version("{organization.id}", payload)
    del payload["pipeline"]["vcs"]
    with pytest.raises(ValueError, match="no pipeline.vcs.branch"):
        render_version("{pipeline.vcs.branch}", payload)


def post(client, payload, **kw):  # type: ignore[no-untyped-def]
    body, headers = signed(payload, **kw)
    return client.post("/hooks/circleci", data=body, headers=headers)


def test_successful_deploy_job_starts_a_release_with_ci_context(ctx: Context) -> None:
    client = create_app().test_client()
    payload = job_completed(number=371)
    resp = post(client, payload)
    assert resp.status_code == 202, resp.get_json()
    data = resp.get_json()
    assert data["status"] == "started" and data["target_version"] == "2.0.371" and data["service"] == "api"
    rel = get(ctx, data["release"])
    assert rel.trigger == "circleci"
    assert rel.ci.model_dump() == {
        "provider": "circleci",
        "project_slug": SLUG,
        "workflow_id": payload["workflow"]["id"],
        "pipeline_id": payload["pipeline"]["id"],
        "pipeline_number": 371,
        "job_number": 1234,
        "job_name": "deploy",
        "build_url": payload["workflow"]["url"] + "/jobs/1234",
    }
    # The same event again (CircleCI retried it): answered 200, nothing new.
    again = post(client, payload)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert again.get_json()["release"] == rel.id
    # A different event for the same version (e.g. a re-run): the same release.
    rerun = post(client, job_completed(number=371))
    assert rerun.status_code == 200 and rerun.get_json()["release"] == rel.id
    assert ctx.store.list_releases()[1] == 1


def test_signature_is_required_and_checked(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    client = create_app().test_client()
    body, headers = signed(job_completed())
    missing = client.post("/hooks/circleci", data=body, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401 and "circleci-signature" in missing.get_json()["error"]
    wrong = client.post(
        "/hooks/circleci", data=body, headers={**headers, "circleci-signature": "v1=" + sign("nope", body)}
    )
    assert wrong.status_code == 401 and "does not match" in wrong.get_json()["error"]
    tampered = client.post("/hooks/circleci", data=body + b" ", headers=headers)
    assert tampered.status_code == 401
    monkeypatch.delenv("CIRCLECI_WEBHOOK_SECRET")
    off = client.post("/hooks/circleci", data=body, headers=headers)
    assert off.status_code == 401 and "CIRCLECI_WEBHOOK_SECRET" in off.get_json()["error"]
    assert ctx.store.list_releases()[1] == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (job_completed(job="build"), "job 'build' of project 'gh/acme/shop' is not a deploy"),
        (job_completed(slug="gh/acme/other"), "project 'gh/acme/other' is not in circleci.projects"),
        (job_completed(status="failed"), "finished with status 'failed'"),
        (job_completed(status="canceled"), "finished with status 'canceled'"),
        ({**job_completed(), "type": "ping"}, "event type 'ping'"),
    ],
)
def test_events_that_start_nothing_are_ignored_with_202(ctx: Context, payload: dict, reason: str) -> None:
    client = create_app().test_client()
    resp = post(client, payload)
    assert resp.status_code == 202
    data = resp.get_json()
    assert data["status"] == "ignored" and reason in data["reason"], data
    assert ctx.store.list_releases()[1] == 0


def test_workflow_completed_starts_the_mapped_service(ctx: Context) -> None:
    client = create_app().test_client()
    payload = job_completed()
    payload["type"] = "workflow-completed"
    del payload["job"]
    payload["workflow"]["name"] = "ship-web"
    payload["workflow"]["status"] = "success"
    resp = post(client, payload)
    assert resp.status_code == 202, resp.get_json()
    rel = get(ctx, resp.get_json()["release"])
    assert (rel.service, rel.target_version) == ("web", "f9b5a4a")
    assert rel.ci.job_number is None and rel.ci.build_url == payload["workflow"]["url"]
    payload["id"] = "another"
    payload["workflow"]["status"] = "failed"
    assert post(client, payload).get_json()["status"] == "ignored"


def test_invalid_version_is_400_and_can_be_retried(ctx: Context) -> None:
    client = create_app().test_client()
    payload = job_completed()
    payload["pipeline"]["number"] = "1; drop"
    resp = post(client, payload)
    assert resp.status_code == 400
    assert "pipeline.number must be a number" in resp.get_json()["error"]
    # Not recorded as seen: a retry after the sender is fixed is processed.
    payload["pipeline"]["number"] = 5
    assert post(client, payload).status_code == 202


def test_bad_bodies_are_json_errors(ctx: Context) -> None:
    client = create_app().test_client()
    for raw in (b"not json", b"[1, 2]", json.dumps({"type": "job-completed"}).encode()):
        headers = {"circleci-signature": "v1=" + sign(WEBHOOK_SECRET, raw)}
        resp = client.post("/hooks/circleci", data=raw, headers=headers)
        assert resp.status_code == 400 and "error" in resp.get_json()


def test_a_request_that_dies_mid_way_does_not_swallow_the_event(ctx: Context) -> None:
    client = create_app().test_client()
    payload = job_completed()
    key = f"{PREFIX}event:circleci:{payload['id']}"
    # The first delivery claimed the event, then its process was killed (no cleanup ran).
    assert claim_event(ctx, "circleci", payload["id"]) is None
    # CircleCI's retry meanwhile is not acknowledged: the first delivery may never finish.
    retry = post(client, payload)
    assert retry.status_code == 409 and retry.headers["Retry-After"] == "10", retry.get_json()
    assert ctx.store.list_releases()[1] == 0
    # The claim expires within minutes, not days; then the next retry is processed.
    assert 0 < ctx.store.r.ttl(key) <= 120
    ctx.store.r.delete(key)  # what the expiry does
    assert post(client, payload).status_code == 202
    assert post(client, payload).status_code == 200  # settled: a plain duplicate now
