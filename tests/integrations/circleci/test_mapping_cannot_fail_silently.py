"""The CircleCI mapping: both spellings of a project slug match, strict payload types, deploys that no
project matched are counted (/metrics) and logged, and `sluice validate` warns about version
templates that GitHub App pipelines cannot fill."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from app.cli.main import main
from app.context import Context
from app.web import create_app
from integrations.circleci.events import canonical_slug, github_app_gaps
from tests.support.ci import API_TOKEN, get, job_completed, signed

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def post(client, payload):  # type: ignore[no-untyped-def]
    body, headers = signed(payload)
    return client.post("/hooks/circleci", data=body, headers=headers)


def unmatched_count(client, slug: str) -> float:  # type: ignore[no-untyped-def]
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "sluice_circleci_unmatched_deploys_total" and s.labels.get("project") == slug:
                return s.value
    return 0.0


def test_slug_spellings_are_one_project() -> None:
    assert canonical_slug("gh/Acme/Shop") == canonical_slug("github/acme/shop") == "github/acme/shop"
    assert canonical_slug("bb/acme/shop") == canonical_slug("bitbucket/acme/shop")
    assert canonical_slug("circleci/0a1b/2c3d") == "circleci/0a1b/2c3d"
    assert canonical_slug("gh/acme/shop") != canonical_slug("bb/acme/shop")


@pytest.mark.parametrize("slug", ["github/acme/shop", "GH/acme/shop", "gh/acme/shop"])
def test_a_payload_with_either_spelling_starts_the_release(ctx: Context, slug: str) -> None:
    resp = post(create_app().test_client(), job_completed(number=371, slug=slug))
    assert resp.status_code == 202, resp.get_json()
    assert get(ctx, resp.get_json()["release"]).target_version == "2.0.371"


def test_a_deploy_from_an_unknown_slug_is_counted_and_logged_once(
    ctx: Context, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Logged once per web process: start from a process that has logged nothing (another test may
    # have sent the same slug before this one).
    monkeypatch.setattr("app.web.circleci._LOGGED_SLUGS", set())
    client = create_app().test_client()
    slug = "circleci/5a0e6b8c-org/0f6a7c2e-project"  # a GitHub App project, configured as gh/acme/shop
    with caplog.at_level(logging.WARNING, logger="sluice.web"):
        first = post(client, job_completed(slug=slug))
        again = post(client, job_completed(slug=slug))  # another deploy, same project
    for resp in (first, again):
        assert resp.status_code == 202 and resp.get_json()["status"] == "ignored"
        assert "not in circleci.projects" in resp.get_json()["reason"]
        assert "gh/acme/shop" in resp.get_json()["reason"]  # what is configured, to compare
    assert unmatched_count(client, slug) == 2
    logged = [r for r in caplog.records if slug in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    # A job that is no deploy anywhere, from a project Sluice does not know: ignored, not counted.
    other = post(client, job_completed(job="unit-tests", slug="gh/acme/other"))
    assert other.get_json()["status"] == "ignored" and unmatched_count(client, "gh/acme/other") == 0
    assert ctx.store.list_releases()[1] == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("pipeline", "number"), True, "pipeline.number must be a number, not true"),
        (("pipeline", "number"), "371", "pipeline.number must be a number"),
        (("pipeline", "number"), 3.5, "pipeline.number must be a number"),
        (("job", "number"), False, "invalid CircleCI ids"),
    ],
)
def test_payload_fields_have_strict_types(ctx: Context, field: tuple[str, str], value: object, message: str) -> None:
    payload = job_completed()
    payload[field[0]][field[1]] = value
    resp = post(create_app().test_client(), payload)
    assert resp.status_code == 400, resp.get_json()
    assert message in resp.get_json()["error"]
    assert ctx.store.list_releases()[1] == 0


def test_a_lone_surrogate_event_id_is_400(ctx: Context) -> None:
    payload = job_completed()
    body, headers = signed(payload)
    body = body.replace(payload["id"].encode(), b"\\ud800")
    from integrations.circleci.events import sign
    from tests.support.ci import WEBHOOK_SECRET

    headers["circleci-signature"] = f"v1={sign(WEBHOOK_SECRET, body)}"
    resp = create_app().test_client().post("/hooks/circleci", data=body, headers=headers)
    assert resp.status_code == 400 and "surrogate" in resp.get_json()["error"]


def test_validate_warns_about_templates_github_app_pipelines_cannot_fill(tmp_path) -> None:
    from tests.support.fakes import BASE_CONFIG

    assert github_app_gaps("{pipeline.vcs.revision_short}-{pipeline.number}") == ["pipeline.vcs.revision_short"]
    assert github_app_gaps("1.0.{pipeline.number}") == []
    config = tmp_path / "sluice.yaml"
    config.write_text(
        BASE_CONFIG
        + """
circleci:
  projects:
    - slug: circleci/0a1b2c3d/4e5f6a7b
      deploys:
        - {workflow: ship, service: web, version: "{pipeline.vcs.revision_short}"}
        - {job: deploy, service: api, version: "2.0.{pipeline.number}"}
"""
    )
    result = CliRunner().invoke(main, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "{pipeline.vcs.revision_short}" in result.output and "GitHub App" in result.output
    assert "deploy ship" in result.output and "deploy deploy" not in result.output
