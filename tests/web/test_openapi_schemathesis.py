"""The API against its own OpenAPI document, with schemathesis, on a real Redis.

Generated requests (valid and invalid) must never get a 5xx, every response must match the
documented status codes, media types and schemas, and bad input must get a 4xx with a JSON
error. Real releases (ticked, with evaluations, events and hook deliveries) are checked
against the schemas too, so the documented shapes are the ones the dashboard reads.
"""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.web import create_app
from app.web.openapi import build_spec
from tests.support.web import AUTH, TOKEN, logged_in
from workers.deliver import run_delivery
from workers.tick import run_tick

pytestmark = pytest.mark.integration

HTML_PATHS = {"/", "/releases/{release_id}", "/login", "/logout"}
HTML_PATHS |= {"/backtests", "/replays/{job_id}", "/backtests/{job_id}"}  # the job pages (app/web/job_pages.py)


@schemathesis.check
def errors_are_json(ctx, response, case) -> bool | None:
    """A 4xx from the API is JSON `{"error": "..."}`, never an HTML page."""
    if not 400 <= response.status_code < 500 or case.operation.path in HTML_PATHS:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    errors_are_json,
]


# /openapi.json needs no Redis, so the document loads at import; requests reach Redis through
# the `ctx` fixture, which every test below takes. (schemathesis.pytest.from_fixture does not
# work with pytest 9's nodes, hence a module-level schema.)
# The document is read with a token, as every read is (the token is set only while it loads).
with mock.patch.dict(os.environ, {"SLUICE_API_TOKEN": TOKEN}):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(), headers=AUTH)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=20, deterministic=True
)


@pytest.fixture
def api_schema(ctx):
    return schema


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one app and Redis for all examples
def test_api_conforms_to_its_openapi_document(ctx, case):
    case.call_and_validate(headers=AUTH, checks=CHECKS)


def test_real_releases_match_the_documented_schemas(ctx, api_schema):
    client = logged_in(create_app().test_client())
    started = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0"}, headers=AUTH)
    assert started.status_code == 202, started.get_json()
    rid = started.get_json()["release"]
    run_tick(rid, 0)  # start: step 1
    run_tick(rid, 1)  # an evaluation
    for d in ctx.store.get(rid).hooks:
        run_delivery(d)
    other = client.post("/hooks/deploy", json={"service": "api", "version": "2.1.0"}, headers=AUTH).get_json()
    client.post(f"/api/v1/releases/{other['release']}/abort", headers=AUTH)

    detail = client.get(f"/api/v1/releases/{rid}").get_json()
    assert detail["evaluations"] and detail["events"] and detail["hook_deliveries"] and detail["checks"]
    assert detail["checks"][0] == {
        "name": "errors",
        "type": "error_rate",
        "threshold": "<= 0.05",
        "min": None,
        "max": 0.05,
        "max_over_stable": None,
        "under_seconds": None,
    }
    cases = [
        ("/api/v1/releases/{release_id}", "GET", {"path_parameters": {"release_id": rid}}),
        ("/api/v1/releases/{release_id}", "GET", {"path_parameters": {"release_id": other["release"]}}),
        ("/api/v1/releases", "GET", {"query": {"state": "running"}}),
        ("/api/v1/releases", "GET", {"query": {"application": "shop", "limit": 1, "offset": 1}}),
        ("/api/v1/applications", "GET", {}),
        ("/api/v1/policies", "GET", {}),
        ("/api/v1/doctor", "GET", {}),
        ("/api/v1/releases/{release_id}/{action}", "POST", {"path_parameters": {"release_id": rid, "action": "pause"}}),
        ("/releases/{release_id}", "GET", {"path_parameters": {"release_id": rid}}),
        ("/metrics", "GET", {}),
        ("/readyz", "GET", {}),
        (
            "/hooks/deploy",
            "POST",
            {"body": {"service": "web", "version": "1.1.0"}, "media_type": "application/json"},
        ),
    ]
    for path, method, kwargs in cases:
        case = api_schema[path][method].Case(**kwargs)
        response = case.call_and_validate(headers=AUTH, checks=CHECKS)
        assert response.status_code < 300, (path, response.status_code, response.text[:300])

    listing = client.get("/api/v1/releases?application=shop&limit=1&offset=1").get_json()
    assert listing["total"] == 2 and len(listing["releases"]) == 1 and listing["releases"][0]["id"] == rid
    apps = client.get("/api/v1/applications").get_json()["applications"]
    web = next(s for s in apps[0]["services"] if s["name"] == "web")
    assert web["active_release"] == rid and web["stable_version"] == "1.0.0"


def test_the_document_describes_every_route(ctx):
    app = create_app()
    spec = app.test_client().get("/openapi.json", headers=AUTH).get_json()
    documented = {p.replace("{", "<").replace("}", ">") for p in spec["paths"]}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("static"):
            continue
        assert rule.rule in documented, f"{rule.rule} is not in /openapi.json"


def test_the_document_declares_the_bearer_scheme_and_which_operations_need_it(ctx):
    spec = create_app().test_client().get("/openapi.json", headers=AUTH).get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie"
    open_reads = {("/healthz", "get"), ("/readyz", "get"), ("/login", "get")}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            names = {name for requirement in op.get("security", []) for name in requirement}
            if (path, method) in open_reads or path in ("/login", "/logout"):
                assert not names, (path, method)
            elif method == "get" or path.startswith("/api/"):
                assert "bearer" in names, (path, method)
            if method == "get" and (path, method) not in open_reads:
                assert "401" in op["responses"], (path, method)


def test_a_route_without_a_description_cannot_be_served_undocumented():
    app = create_app()
    app.add_url_rule("/undocumented", "undocumented", lambda: "")
    with pytest.raises(RuntimeError, match="/undocumented"):
        build_spec(app)
