"""Reading JSON request bodies strictly, with errors that say what to fix."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.web.errors import ApiError, validation_detail

M = TypeVar("M", bound=BaseModel)


def any_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whatever its Content-Type (Argo CD sends none unless configured)."""
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def json_body(model: type[M]) -> M:
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "send the body as JSON with `Content-Type: application/json`")
    data = any_json_body(request.get_data(cache=True))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "the body has invalid fields", validation_detail(exc)) from None
