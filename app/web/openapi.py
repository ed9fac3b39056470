"""`GET /openapi.json`: every endpoint, with request and response schemas from the pydantic models.

The response models below describe what `app/views.py` and the endpoints return; the
schemathesis test (tests/web/test_openapi_schemathesis.py) checks every response against
them, so they cannot drift from the code unnoticed. Webhook receivers added by other
modules (CircleCI, Argo) are described when their route is registered on the app.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from app.config import PolicyConfig, StepConfig
from app.models import CheckResult, CIContext, Event, ReleaseState
from app.web.deploy import DeployNotification

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"


class Error(BaseModel):
    """Every error: a message that says what to fix, and sometimes details."""

    error: str
    detail: Any = None


class ReleaseSummary(BaseModel):
    id: str
    application: str
    namespace: str
    service: str
    source_version: str
    target_version: str
    policy: str
    state: ReleaseState
    step: int = Field(description="0-based index of the current step; -1 before the first.")
    step_started_at: float | None
    seq: int
    consecutive_failures: int
    resumed_step: int
    no_data_since: float | None
    desired_weights: dict[str, int]
    weights_applied: bool
    reason: str | None = Field(description="Why the release is in its state: for a failed one, the failing check.")
    created_at: float
    updated_at: float
    finished_at: float | None
    next_tick_at: float | None
    ci: CIContext
    trigger: str
    current_step: int | None = Field(description="1-based current step, null before the first.")
    weights: dict[str, int] = Field(description="Percent of traffic per version, as the release wants it.")
    duration_seconds: float


class CheckThreshold(BaseModel):
    name: str
    type: str
    threshold: str
    min: float | None
    max: float | None
    max_over_stable: float | None
    under_seconds: float | None


class DeliveryAttempt(BaseModel):
    model_config = ConfigDict(extra="allow")
    at: float
    duration_ms: float | None = None
    status: int | None = None
    ok: bool | None = None
    response: str | None = None
    error: str | None = None


class HookDelivery(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    release_id: str
    hook: str
    type: str
    event: str
    target: str = Field(description="The receiver, without credentials, query or fragment.")
    payload: dict[str, Any]
    state: Literal["pending", "delivered", "failed"]
    attempts: list[DeliveryAttempt]
    created_at: float | None = None
    next_attempt_at: float | None = None


class ReleaseDetail(ReleaseSummary):
    steps: list[StepConfig]
    interval_seconds: float | None
    tolerance: int | None
    checks: list[CheckThreshold]
    evaluations: list[CheckResult]
    events: list[Event]
    hook_deliveries: list[HookDelivery]


class ReleaseList(BaseModel):
    releases: list[ReleaseSummary]
    total: int
    limit: int
    offset: int


class DeployAccepted(BaseModel):
    release: str
    state: ReleaseState
    status_url: str
    duplicate: bool
    source_version: str
    target_version: str
    policy: str


class SteerRequest(BaseModel):
    reason: str | None = Field(None, max_length=500, description="Recorded on the release's event log.")


class ServiceInfo(BaseModel):
    name: str
    policy: str | dict[str, str]
    stable_version: str | None
    active_release: str | None


class ApplicationInfo(BaseModel):
    name: str
    namespace: str
    router: str
    services: list[ServiceInfo]


class ApplicationList(BaseModel):
    applications: list[ApplicationInfo]


class PolicyList(BaseModel):
    policies: list[PolicyConfig]


class Health(BaseModel):
    status: str
    detail: dict[str, str] | None = None


class Accepted(BaseModel):
    """What a notification receiver answers: at least the release it started or found, or why it ignored it."""

    model_config = ConfigDict(extra="allow")


MODELS: list[type[BaseModel]] = [
    Error,
    ReleaseSummary,
    ReleaseDetail,
    ReleaseList,
    DeployAccepted,
    DeployNotification,
    SteerRequest,
    ApplicationList,
    PolicyList,
    Health,
    Accepted,
]


def _components() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation" if m in (DeployNotification, SteerRequest) else "serialization") for m in MODELS],
        ref_template=REF,
    )
    return top.get("$defs", {})


def _json(model: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


DEFAULT_ERROR = _error("An error: JSON with `error` (what to fix) and sometimes `detail`.")
RELEASE_ID = {"name": "release_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _op(summary: str, responses: dict[str, Any], tag: str, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [tag], "responses": {**responses, "default": DEFAULT_ERROR}, **extra}


def _paths() -> dict[str, Any]:
    q = lambda name, schema, description: {  # noqa: E731 - a table of parameters reads best inline
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
    states = ["pending", "running", "paused", "aborted", "failed", "succeeded"]
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "/hooks/deploy": {
            "post": _op(
                "A deploy notification: start (or find) the release of a service's new version",
                {
                    "202": _json("DeployAccepted", "A release was started; `status_url` follows it."),
                    "200": _json("DeployAccepted", "A duplicate notification: the release it already started."),
                    "400": _error("The body has invalid fields (each named in `detail`)."),
                    "401": _error("Missing or wrong bearer token or signature."),
                    "404": _error("No such service in the configuration."),
                    "409": _error("The version is already stable."),
                    "415": _error("The body is not JSON."),
                },
                "receivers",
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF.format(model="DeployNotification")}}},
                },
                security=[{"bearer": []}, {"deploySignature": []}],
            )
        },
        "/api/v1/releases": {
            "get": _op(
                "Releases, newest first, filtered and paged",
                {
                    "200": _json("ReleaseList", "A page of releases and the total that match."),
                    "400": _error("A filter or paging value is invalid."),
                },
                "releases",
                parameters=[
                    q("service", {"type": "string"}, "Only this service."),
                    q("application", {"type": "string"}, "Only this application."),
                    q("state", {"type": "string", "enum": states}, "Only releases in this state."),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
                    q("offset", {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0}, "Skip."),
                ],
            )
        },
        "/api/v1/releases/{release_id}": {
            "get": _op(
                "The whole story of a release: state, steps, weights, every evaluation, events, hook deliveries",
                {"200": _json("ReleaseDetail", "The release."), "404": _error("No such release.")},
                "releases",
                parameters=[RELEASE_ID],
            )
        },
        "/api/v1/releases/{release_id}/{action}": {
            "post": _op(
                "Steer a release: pause, resume, promote (all traffic to the candidate) or abort (all to stable)",
                {
                    "200": _json("ReleaseDetail", "The release after the action."),
                    "401": _error("Missing or wrong bearer token."),
                    "404": _error("No such release or action."),
                    "409": _error("The action does not apply to the release's state, or a tick is running."),
                },
                "releases",
                parameters=[
                    RELEASE_ID,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["pause", "resume", "promote", "abort"]},
                    },
                ],
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": REF.format(model="SteerRequest")}}},
                },
                security=[{"bearer": []}],
            )
        },
        "/api/v1/applications": {
            "get": _op(
                "Applications and their services, with stable versions and active releases",
                {"200": _json("ApplicationList", "The configured applications.")},
                "configuration",
            )
        },
        "/api/v1/policies": {
            "get": _op(
                "Release policies: steps, interval, checks and thresholds, tolerance",
                {"200": _json("PolicyList", "The configured policies.")},
                "configuration",
            )
        },
        "/healthz": {"get": _op("Liveness", {"200": _json("Health", "The process is up.")}, "operations")},
        "/readyz": {
            "get": _op(
                "Readiness: configuration loads and Redis answers",
                {"200": _json("Health", "Ready."), "503": _json("Health", "Not ready, with the reason.")},
                "operations",
            )
        },
        "/metrics": {
            "get": _op(
                "Sluice's own metrics (Prometheus text format)",
                {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                "operations",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                "operations",
            )
        },
        "/": {"get": _op("Dashboard: the list of releases", {"200": {"description": "HTML.", **html}}, "dashboard")},
        "/releases/{release_id}": {
            "get": _op(
                "Dashboard: one release, live",
                {"200": {"description": "HTML.", **html}, "404": {"description": "No such release.", **html}},
                "dashboard",
                parameters=[RELEASE_ID],
            )
        },
    }


def _receiver(summary: str, headers: list[tuple[str, str]], security: list[dict[str, list[str]]]) -> dict[str, Any]:
    return {
        "post": _op(
            summary,
            {
                "202": _json("Accepted", "A release was started."),
                "200": _json(
                    "Accepted", "Accepted without starting a release (a duplicate, or an event Sluice ignores)."
                ),
                "400": _error("The notification cannot be read."),
                "401": _error("Missing or wrong signature or token."),
            },
            "receivers",
            parameters=[
                {"name": n, "in": "header", "required": False, "schema": {"type": "string"}, "description": d}
                for n, d in headers
            ],
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
            },
            **({"security": security} if security else {}),
        )
    }


# Receivers that other modules register; described only when the app has their route.
RECEIVERS: dict[str, dict[str, Any]] = {
    "/hooks/circleci": _receiver(
        "CircleCI outbound webhook (workflow-completed, job-completed), signature v1",
        [
            ("circleci-signature", "`v1=<hex HMAC-SHA256 of the body with CIRCLECI_WEBHOOK_SECRET>`"),
            ("circleci-event-type", "`workflow-completed` or `job-completed`"),
        ],
        [],
    ),
    "/hooks/argocd": _receiver("Argo CD notification (a sync of a new version)", [], [{"bearer": []}]),
    "/hooks/argo-rollouts": _receiver("Argo Rollouts notification (a rollout of a new version)", [], [{"bearer": []}]),
}


def build_spec(app: Flask) -> dict[str, Any]:
    paths = _paths()
    registered = {rule.rule for rule in app.url_map.iter_rules()}
    for path, item in RECEIVERS.items():
        if path in registered:
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sluice",
            "version": "1",
            "description": "A release agent: shifts live traffic to a new version in steps, judges it on "
            "Prometheus, promotes it or puts traffic back. Errors are JSON: "
            '`{"error": "...", "detail": ...}` with a 4xx that says what to fix.',
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "SLUICE_API_TOKEN"},
                "deploySignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Sluice-Signature",
                    "description": "`sha256=<hex HMAC-SHA256 of the body with SLUICE_DEPLOY_SECRET>`",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    spec = current_app.extensions.get("sluice_openapi")
    if spec is None:
        spec = current_app.extensions["sluice_openapi"] = build_spec(current_app)
    return jsonify(spec)
