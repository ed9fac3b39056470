"""No input gets a 5xx: bounded JSON (depth, size, Unicode), strict types, JSON for every error
status with `Allow` on 405, and a hypothesis fuzz over every route, with and without tokens."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.context import Context
from app.web import create_app
from app.web.bodies import MAX_DEPTH, nesting_depth
from integrations.circleci.events import sign
from tests.support.web import AUTH, TOKEN

pytestmark = pytest.mark.integration
CIRCLE_SECRET = "circle-secret-for-hostile-tests"
DEEP = b"[" * 1000 + b"]" * 1000


@pytest.fixture
def client(ctx: Context, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIRCLECI_WEBHOOK_SECRET", CIRCLE_SECRET)
    return create_app().test_client()


def assert_json_error(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    return body


def post_everywhere(client, raw: bytes):  # type: ignore[no-untyped-def]
    """The body to every POST endpoint, authenticated so that it is read."""
    json_type = {"Content-Type": "application/json"}
    yield "/hooks/deploy", client.post("/hooks/deploy", data=raw, headers={**AUTH, **json_type})
    signature = {"circleci-signature": "v1=" + sign(CIRCLE_SECRET, raw), **json_type}
    yield "/hooks/circleci", client.post("/hooks/circleci", data=raw, headers=signature)
    yield "/hooks/argocd", client.post("/hooks/argocd", data=raw, headers=AUTH)
    yield "/hooks/argo-rollouts", client.post("/hooks/argo-rollouts", data=raw, headers=AUTH)
    yield "steer", client.post("/api/v1/releases/r-x/pause", data=raw, headers={**AUTH, **json_type})


@pytest.mark.parametrize("raw", [DEEP, b'{"a":' * 500 + b"1" + b"}" * 500, b"[" * 100_000])
def test_deeply_nested_json_is_400_on_every_endpoint(client, raw: bytes) -> None:
    for where, resp in post_everywhere(client, raw):
        body = assert_json_error(resp, 400 if len(raw) < 256 * 1024 else 413)
        assert "nested too deeply" in body["error"] or resp.status_code == 413, where


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert nesting_depth(b'{"a": "' + b"[" * 5000 + b'"}') <= 1
    assert nesting_depth(b'["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]') <= 1
    assert nesting_depth(b"[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert nesting_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == 0  # few brackets: not even scanned


def test_lone_surrogates_are_400(client) -> None:
    for where, resp in post_everywhere(client, b'{"id": "\\ud800", "service": "\\udfff"}'):
        assert "surrogate" in assert_json_error(resp, 400)["error"], where


def test_a_body_shorter_than_its_content_length_is_400(client) -> None:
    """The body is read straight from the server's stream (app/web/bodies.py): one that ends early is
    refused with a 400 that says so, never parsed as if it were whole."""
    body = json.dumps({"service": "web", "version": "1.1.0"}).encode()
    resp = client.post(
        "/hooks/deploy",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(len(body) + 10)},
    )
    assert "Content-Length" in assert_json_error(resp, 400)["error"]


def test_payload_fields_have_strict_types(client) -> None:
    for ci in ({"pipeline_number": True}, {"pipeline_number": "7"}, {"job_number": 1.5}, {"workflow_id": 5}):
        resp = client.post("/hooks/deploy", json={"service": "web", "version": "1.1.0", "ci": ci}, headers=AUTH)
        detail = assert_json_error(resp, 400)["detail"]
        assert detail and detail[0]["field"].startswith("ci."), detail
    resp = client.post("/hooks/deploy", json={"service": "web", "version": 11}, headers=AUTH)
    assert assert_json_error(resp, 400)["detail"][0]["field"] == "version"


def test_every_error_status_is_json(client) -> None:
    assert_json_error(client.get("/no/such/page", headers=AUTH), 404)
    resp = client.delete("/hooks/deploy", headers=AUTH)
    assert_json_error(resp, 405)
    assert resp.headers["Allow"] == "OPTIONS, POST"
    assert "GET" in client.put("/api/v1/releases", headers=AUTH).headers["Allow"]
    big = b'{"service": "' + b"x" * (300 * 1024) + b'"}'
    assert_json_error(client.post("/hooks/deploy", data=big, headers={**AUTH, "Content-Type": "application/json"}), 413)
    assert_json_error(client.get("/api/v1/releases?service=" + "x" * 5000, headers=AUTH), 414)
    assert_json_error(client.post("/api/v1/releases/r-x/pause", json={"reason": 5}, headers=AUTH), 400)
    assert_json_error(client.post("/api/v1/releases/r-x/pause", json={"reason": "x" * 501}, headers=AUTH), 400)


# --- fuzz ---------------------------------------------------------------------------------------------

HTML = {"/", "/login", "/logout"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
payload_fields = st.fixed_dictionaries(
    {},
    optional={
        "service": st.one_of(st.sampled_from(["web", "api", "nope"]), st.text(max_size=70), json_values),
        "version": st.one_of(st.sampled_from(["1.1.0", "1.0.0", "2.0.0"]), st.text(max_size=70), json_values),
        "ci": st.one_of(json_values, st.fixed_dictionaries({}, optional={"pipeline_number": json_values})),
        "id": st.one_of(st.text(max_size=200), json_values),
        "type": st.sampled_from(["job-completed", "workflow-completed", "ping"]),
        "project": st.one_of(json_values, st.fixed_dictionaries({"slug": st.text(max_size=40)})),
        "pipeline": json_values,
        "job": json_values,
        "reason": json_values,
        "app": json_values,
        "rollout": json_values,
    },
)
bodies = st.one_of(
    payload_fields.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda n: b"[" * n),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b'{"id": "\\ud800", "type": "job-completed"}'),
)
paths = st.sampled_from(
    [
        "/hooks/deploy",
        "/hooks/circleci",
        "/hooks/argocd",
        "/hooks/argo-rollouts",
        "/api/v1/releases",
        "/api/v1/releases/r-x",
        "/api/v1/releases/r-x/pause",
        "/api/v1/releases/r-x/explode",
        "/api/v1/applications",
        "/api/v1/policies",
        "/metrics",
        "/openapi.json",
        "/healthz",
        "/readyz",
        "/login",
        "/logout",
        "/",
        "/releases/r-x",
        "/nope",
    ]
)
auths = st.sampled_from(["none", "api", "read", "intake", "wrong", "signed"])
queries = st.one_of(
    st.just(""),
    st.dictionaries(st.sampled_from(["limit", "offset", "state", "service", "next"]), st.text(max_size=30)).map(
        lambda d: "?" + "&".join(f"{k}={v}" for k, v in d.items())
    ),
)


# 600 cases here; the chaos run asks for more (SLUICE_FUZZ_EXAMPLES=5000).
@settings(
    max_examples=int(os.environ.get("SLUICE_FUZZ_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    path=paths,
    query=queries,
    body=bodies,
    who=auths,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
)
def test_fuzz_every_endpoint_with_and_without_tokens_never_5xx(
    client, monkeypatch: pytest.MonkeyPatch, method, path, query, body, who, content_type
) -> None:
    monkeypatch.setenv("SLUICE_READ_TOKEN", "fuzz-read")
    monkeypatch.setenv("SLUICE_INTAKE_TOKEN", "fuzz-intake")
    headers = {"Content-Type": content_type} if content_type else {}
    token = {"api": TOKEN, "read": "fuzz-read", "intake": "fuzz-intake", "wrong": "nope"}.get(who)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if who == "signed":
        headers["circleci-signature"] = "v1=" + sign(CIRCLE_SECRET, body)
    resp = client.open(path + query, method=method, data=body, headers=headers)
    assert resp.status_code < 500, (method, path, query, body[:100], who, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400 and method != "HEAD" and path not in HTML and not path.startswith("/releases/"):
        assert resp.mimetype == "application/json", (method, path, resp.status_code)


# One quote, then escaped quotes, then enough brackets to be scanned: a regex for "a string, escapes
# skipped" tried at every quote scanned to the end each time (quadratic: 120 KB took 30 s).
ADVERSARIAL = b'"' + b'\\"' * ((256 * 1024 - 64) // 2) + b"[" * 40
CHECK = """
import sys, time
from app.web.bodies import MAX_BODY_BYTES, parse_json
from app.web.errors import ApiError
raw = sys.stdin.buffer.read()
assert len(raw) <= MAX_BODY_BYTES, len(raw)
started = time.monotonic()
try:
    parse_json(raw)
except ApiError as exc:
    print(exc.status, round(time.monotonic() - started, 2))
"""


def test_an_adversarial_256_kib_body_is_answered_in_linear_time() -> None:
    """Run apart, so that a quadratic scan fails the test at the deadline instead of running for minutes.
    The bound is gunicorn's worker timeout (30 s); a linear scan takes well under a second."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHECK], input=ADVERSARIAL, env=env, capture_output=True, timeout=30, cwd=root
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a 256 KiB body took the JSON check over 30 s (gunicorn's worker timeout)")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.split()[0] == b"400"  # not JSON: an unterminated string


def test_depth_is_counted_with_escapes_and_strings_in_one_pass() -> None:
    assert nesting_depth(b'["\\\\", ' + b"[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1  # an escaped backslash ends
    assert nesting_depth(b'"\\"' + b"[" * (MAX_DEPTH + 1) + b'"') == 0  # all inside one string
    assert nesting_depth(b'[{"a": "]}]}"}' + b"]" * 40) <= 2
