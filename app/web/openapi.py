"""`GET /openapi.json`, generated from the app itself: one source for the API and its document.

Every route carries a `@doc(...)` next to its handler: a summary, and which pydantic model
answers with which status (the same classes the handler serialises with `respond`, see
app/web/responses.py and app/release/views.py). `build_spec` walks Flask's URL map, so a route cannot
be added without being described (it raises), and the schemas come from `models_json_schema`.
The schemathesis test (tests/web/test_openapi_schemathesis.py) checks real answers against it.

A small generator rather than flask-openapi3 / spectree: those replace Flask's routing and
request parsing, while the receivers here need raw bodies (signatures), lenient JSON and their
own error answers; describing what Flask already routes takes a hundred lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from app.web.auth import OPEN_ENDPOINTS, READ_METHODS, SESSION_COOKIE
from app.web.responses import Error, NotStarted, Started

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")  # Flask's <converter:name>
F = TypeVar("F", bound=Callable[..., Any])

# What a response or request body is: a model, any of several models, any JSON object (`dict`),
# or a non-JSON media type with a text body ("text/html").
Schema = type[BaseModel] | tuple[type[BaseModel], ...] | type[dict] | str
Answers = dict[int, tuple[Schema, str]]


@dataclass(frozen=True)
class Doc:
    summary: str
    tag: str
    responses: Answers
    body: type[BaseModel] | type[dict] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    security: list[str] = field(default_factory=list)  # any one of these schemes
    path: dict[str, dict[str, Any]] = field(default_factory=dict)  # path parameters that are not any string


def doc(summary: str, tag: str, responses: Answers, **details: Any) -> Callable[[F], F]:
    """Describe a route for /openapi.json (put it under the route decorator)."""

    def mark(view: F) -> F:
        view.openapi = Doc(summary, tag, responses, **details)  # type: ignore[attr-defined]
        return view

    return mark


def error(description: str) -> tuple[Schema, str]:
    return Error, description


RECEIVER_ANSWERS: Answers = {
    202: ((Started, NotStarted), "A release was started, or the event is ignored (with the reason)."),
    200: ((Started, NotStarted), "A duplicate: the release the event already started, or why it was ignored."),
    400: error("The notification cannot be read."),
    401: error("Missing or wrong signature or token."),
    409: (NotStarted, "The first delivery of this event is still being processed: retry later."),
}
INFO = {
    "title": "Sluice",
    "version": "1",
    "description": "A release agent: shifts live traffic to a new version in steps, judges it on "
    "Prometheus, promotes it or puts traffic back. Errors are JSON: "
    '`{"error": "...", "detail": ...}` with a 4xx that says what to fix.',
}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "SLUICE_API_TOKEN (everything), SLUICE_READ_TOKEN (reads: every GET but health and "
        "login), SLUICE_INTAKE_TOKEN (deploy notifications and the Argo receivers only). Each operation "
        "says which it takes.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session (HttpOnly, SameSite=Strict), set by POST /login with a read "
        "or API token; reads only.",
    },
    "deploySignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Sluice-Signature",
        "description": "`sha256=<hex HMAC-SHA256 of the body with SLUICE_DEPLOY_SECRET>`",
    },
}


class _Builder:
    """Collects the models an operation refers to while it is described."""

    def __init__(self) -> None:
        self.models: dict[type[BaseModel], JsonSchemaMode] = {Error: "serialization"}

    def schema(self, schema: Schema, mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        if isinstance(schema, tuple):
            return {"anyOf": [self.schema(m, mode) for m in schema]}
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.models.setdefault(schema, mode)
            return {"$ref": REF.format(model=schema.__name__)}
        return {"type": "object", "additionalProperties": True}

    def content(self, schema: Schema, mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        if isinstance(schema, str):
            return {schema: {"schema": {"type": "string"}}}
        return {"application/json": {"schema": self.schema(schema, mode)}}

    def operation(self, d: Doc, rule: Rule, method: str = "GET") -> dict[str, Any]:
        responses = {
            str(code): {"description": text, "content": self.content(s)} for code, (s, text) in d.responses.items()
        }
        security = list(d.security)
        if method in READ_METHODS and rule.endpoint not in OPEN_ENDPOINTS and not security:
            security = ["bearer", "session"]  # reads: a read (or API) token, or the dashboard's session
            responses.setdefault("401", {"description": "A read token is needed.", "content": self.content(Error)})
        responses["default"] = {
            "description": "An error: JSON with `error` (what to fix) and sometimes `detail`.",
            "content": self.content(Error),
        }
        op: dict[str, Any] = {"summary": d.summary, "tags": [d.tag], "responses": responses}
        params = [
            {"name": n, "in": "path", "required": True, "schema": d.path.get(n, {"type": "string", "minLength": 1})}
            for n in _PATH_PARAM.findall(rule.rule)
        ]
        params += _query_parameters(d.query) if d.query else []
        params += [
            {"name": n, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
            for n, text in d.headers.items()
        ]
        if params:
            op["parameters"] = params
        if d.body is not None:
            op["requestBody"] = {"required": d.body_required, "content": self.content(d.body, "validation")}
        if security:
            op["security"] = [{name: []} for name in security]
        return op

    def components(self) -> dict[str, Any]:
        _, top = models_json_schema(list(self.models.items()), ref_template=REF)
        return dict(top.get("$defs", {}))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One query parameter per field of `model` (optional ones typed without their `null`)."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        if "anyOf" in prop:
            prop.update(next(s for s in prop.pop("anyOf") if s.get("type") != "null"))
        if prop.get("default") is None:
            prop.pop("default", None)
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
                "description": description,
            }
        )
    return params


def build_spec(app: Flask) -> dict[str, Any]:
    builder = _Builder()
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("static"):
            continue
        d: Doc | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if d is None:
            raise RuntimeError(f"route {rule.rule} ({rule.endpoint}) has no @doc(...) for /openapi.json")
        path = _PATH_PARAM.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = builder.operation(d, rule, method)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {"schemas": builder.components(), "securitySchemes": SECURITY_SCHEMES},
    }


@bp.get("/openapi.json")
@doc("This document", "operations", {200: (dict, "OpenAPI 3.1.")})
def openapi_json():
    spec = current_app.extensions.get("sluice_openapi")
    if spec is None:
        spec = current_app.extensions["sluice_openapi"] = build_spec(current_app)
    return jsonify(spec)
