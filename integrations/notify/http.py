"""One JSON call to an outside API, classified into an Outcome the delivery worker understands.

2xx: ok. 429 (and 408/425): retry, honouring Retry-After. 5xx and network errors: retry with
backoff. Other 4xx: not retried; the API's own error message is kept for the record.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from integrations.notify.webhook import Outcome, parse_retry_after

USER_AGENT = "Sluice/1"
# What of an answer is kept for the record: the delivery worker redacts it, then cuts it shorter.
EXCERPT_CHARS = 4096
RETRY_STATUSES = frozenset({408, 425, 429})


def call(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    body: Any = None,
    params: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> tuple[Outcome, requests.Response | None]:
    """Make the call (always with a timeout, never following redirects). Returns the outcome and
    the response (None when nothing came back)."""
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        resp = (session or requests).request(
            method, url, data=data, params=params, headers=all_headers, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        return Outcome(False, None, "", retryable=True, error=f"no answer within {timeout:g}s"), None
    except requests.RequestException as exc:
        return Outcome(False, None, "", retryable=True, error=f"{type(exc).__name__}: could not reach the API"), None
    return classify(resp), resp


def classify(resp: requests.Response) -> Outcome:
    excerpt = resp.text[:EXCERPT_CHARS]
    if 200 <= resp.status_code < 300:
        return Outcome(True, resp.status_code, excerpt, retryable=False)
    retryable = resp.status_code in RETRY_STATUSES or resp.status_code >= 500
    message = error_message(resp)
    return Outcome(
        False,
        resp.status_code,
        excerpt,
        retryable=retryable,
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        error=message,
    )


def error_message(resp: requests.Response) -> str | None:
    """`{"message": ...}` (CircleCI, PagerDuty) or a short text body (Slack's `invalid_payload`)."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:EXCERPT_CHARS] or None
    if isinstance(data, dict):
        for key in ("message", "error", "errors"):
            if data.get(key):
                value = data[key]
                return (value if isinstance(value, str) else json.dumps(value))[:EXCERPT_CHARS]
    return None


def failed(message: str, status: int | None = None, excerpt: str = "") -> Outcome:
    """A failure that retrying cannot fix (missing CI context, nothing to approve...)."""
    return Outcome(False, status, excerpt or message, retryable=False, error=message)
