"""Deploys that no circleci.projects slug matched are shown where an operator looks: the API the
dashboard reads (`/api/v1/intake/unmatched`) and `sluice doctor`, each with the slug and the fix;
and they stop being shown once the configuration matches them."""

from __future__ import annotations

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.doctor.checks import check_unmatched_deploys
from app.web import create_app
from tests.support.ci import API_TOKEN, ci_config, job_completed, signed
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def post(client, payload):  # type: ignore[no-untyped-def]
    body, headers = signed(payload)
    return client.post("/hooks/circleci", data=body, headers=headers)


def test_unmatched_slugs_are_listed_with_their_fix_until_configured(
    ctx: Context, circle: FakeCircleCI, pagerduty: FakePagerDuty
) -> None:
    client = create_app().test_client()
    typo = "github/acme-corp/shop"  # configured as gh/acme/shop: same repository, other organisation
    unknown = "circleci/5a0e6b8c-org/0f6a7c2e-project"
    for slug in (typo, typo, typo, unknown):
        assert post(client, job_completed(slug=slug)).get_json()["status"] == "ignored"
    assert client.get("/api/v1/intake/unmatched").status_code == 401  # a read like any other

    listed = client.get("/api/v1/intake/unmatched", headers=AUTH).get_json()["unmatched"]
    assert [(u["slug"], u["count"]) for u in listed] == [(typo, 3), (unknown, 1)]
    assert "'gh/acme/shop'" in listed[0]["fix"] and typo in listed[0]["fix"]
    assert f"- slug: {unknown}" in listed[1]["fix"]

    findings = check_unmatched_deploys(ctx)
    assert [(f.name, f.status) for f in findings] == [
        (f"circleci project {typo}", "warn"),
        (f"circleci project {unknown}", "warn"),
    ]
    assert "3 deploy(s) ignored" in findings[0].detail and "gh/acme/shop" in findings[0].fix

    # The operator fixes the slug: that project is no longer reported; the other still is.
    ctx.config = parse_config(ci_config(circle, pagerduty).replace("gh/acme/shop", typo))
    listed = client.get("/api/v1/intake/unmatched", headers=AUTH).get_json()["unmatched"]
    assert [u["slug"] for u in listed] == [unknown]
    assert [f.name for f in check_unmatched_deploys(ctx)] == [f"circleci project {unknown}"]
