"""Reading request bodies strictly, with errors that say what to fix.

Every body is bounded before it is parsed: at most MAX_BODY_BYTES (chunked bodies too: read one
byte past the limit and answer 413, never a silently truncated body), JSON nested at most
MAX_DEPTH deep (checked by a scan of the brackets before `json.loads`, which would otherwise
recurse into a RecursionError on `[[[[...`), and no lone surrogates (`"\\ud800"` parses, but
cannot be encoded, stored or compared as text).
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import g, request
from pydantic import BaseModel, ValidationError

from app.web.errors import ApiError, validation_detail
from app.web.responses import SteerRequest

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 32
_READ_CHUNK = 64 * 1024
# One token at a time: an escape pair (so an escaped quote is never taken for the end of a string),
# a quote or a bracket. Each byte is looked at once: linear. (A regex matching a whole string was
# tried at every quote and scanned to the end each time when the string never ends: quadratic.)
_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)
_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPENING = frozenset(b"[{")


def too_large() -> ApiError:
    return ApiError(413, f"request body too large (limit {MAX_BODY_BYTES // 1024} KiB)")


def raw_body() -> bytes:
    """The request body, read once, at most MAX_BODY_BYTES (413 past it, chunked or not)."""
    cached = g.get("sluice_body")
    if cached is not None:
        return cached
    length = request.content_length
    if length is not None:
        if length > MAX_BODY_BYTES:
            raise too_large()
        data = _exactly(request.environ["wsgi.input"], length)
        request._cached_data = data  # what request.get_data() answers from now on
    elif request.environ.get("wsgi.input_terminated"):
        # Chunked (no Content-Length): the server ends the stream; read one byte past the limit.
        stream = request.environ["wsgi.input"]
        parts, total = [], 0
        while total <= MAX_BODY_BYTES:
            chunk = stream.read(min(_READ_CHUNK, MAX_BODY_BYTES + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise too_large()
        data = b"".join(parts)
        request._cached_data = data  # what request.get_data() answers from now on
    else:
        data = request.get_data(cache=True)
    g.sluice_body = data
    return data


def _exactly(stream: Any, length: int) -> bytes:
    """`length` bytes of the body, read straight from the server's stream: werkzeug's get_data() goes
    through a LimitedStream and more calls, each read under its own deadline (app/web/deadline.py): ~4% of a
    duplicate webhook's CPU in a gevent worker. A body that ends short of its Content-Length is a 400."""
    parts, total = [], 0
    while total < length:
        chunk = stream.read(length - total)
        if not chunk:
            raise ApiError(
                400, f"the body ended after {total} of the {length} bytes its Content-Length announced; send it whole"
            )
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep `raw`'s brackets nest (outside strings), counted up to `limit + 1`."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return 0  # cannot be deeper than the limit: no scan needed
    depth = deepest = 0
    in_string = False
    # A backslash outside a string is not JSON: json.loads stops there, so what is counted after it
    # (perhaps wrongly) is never parsed.
    for m in _TOKEN.finditer(raw):
        c = raw[m.start()]
        if c == _BACKSLASH:
            continue
        if c == _QUOTE:
            in_string = not in_string
        elif in_string:
            continue
        elif c in _OPENING:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """Any JSON value, or a 400 that says what is wrong (never a RecursionError or UnicodeError)."""
    if nesting_depth(raw) > MAX_DEPTH:
        raise ApiError(400, f"the body is nested too deeply (at most {MAX_DEPTH} levels of arrays and objects)")
    try:
        data = json.loads(raw or b"null")
    except RecursionError:
        raise ApiError(400, f"the body is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "the body holds a lone surrogate (such as \\ud800): not valid Unicode") from None
    return data


def any_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whatever its Content-Type (Argo CD sends none unless configured)."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def json_body(model: type[M], *, strict: bool = False) -> M:
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "send the body as JSON with `Content-Type: application/json`")
    data = any_json_body(raw_body())
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise ApiError(400, "the body has invalid fields", validation_detail(exc)) from None


def steer_reason() -> str:
    """The reason a control action (pause, abort, a fleet's abort...) may carry: a body that is not
    JSON is no error (there is just no reason); a JSON one is read strictly, since its reason is stored."""
    raw = raw_body()
    if not raw.strip() or request.mimetype != "application/json":
        return ""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object, e.g. {"reason": "..."}')
    try:
        return SteerRequest.model_validate(body, strict=True).reason or ""
    except ValidationError as exc:
        raise ApiError(400, "the body has invalid fields", validation_detail(exc)) from None
