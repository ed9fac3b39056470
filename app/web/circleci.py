"""`POST /hooks/circleci`: CircleCI outbound webhooks (job-completed, workflow-completed).

Signature v1 (HMAC-SHA256 of the raw body with CIRCLECI_WEBHOOK_SECRET) is checked before
anything else. Which events announce a deploy, and of which version, is the integration's
business (integrations/circleci/events.py); everything else is answered 202 "ignored" so that
CircleCI does not retry it.
"""

from __future__ import annotations

import logging
import os
import re

from flask import Blueprint, Response, request

from app.context import Context, get_context
from app.telemetry import metrics
from app.web.bodies import any_json_body, raw_body
from app.web.errors import ApiError
from app.web.openapi import RECEIVER_ANSWERS, doc
from app.web.receivers import answer, ignored, process_once
from integrations.circleci import events

bp = Blueprint("circleci", __name__)
log = logging.getLogger("sluice.web")
_LOGGED_SLUGS: set[str] = set()
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # becomes part of a Redis key


def _check_signature(body: bytes) -> None:
    secret = os.environ.get("CIRCLECI_WEBHOOK_SECRET")
    if not secret:
        raise ApiError(401, "CircleCI webhooks are not enabled: set CIRCLECI_WEBHOOK_SECRET where Sluice runs")
    header = request.headers.get("circleci-signature")
    if not header:
        raise ApiError(401, "missing circleci-signature header (set the webhook's secret in CircleCI)")
    if not events.verify_signature(secret, header, body):
        raise ApiError(401, "circleci-signature does not match the body (HMAC-SHA256 with CIRCLECI_WEBHOOK_SECRET)")


def _unmatched(ctx: Context, result: events.IgnoredUnmatchedDeploy) -> None:
    """Count every deploy that no project matched; log each slug once per process (not per retry)."""
    metrics.count_unmatched_deploy(ctx.store, result.slug)
    if result.slug not in _LOGGED_SLUGS and len(_LOGGED_SLUGS) < 1000:
        _LOGGED_SLUGS.add(result.slug)
        log.warning("CircleCI deploy ignored: %s", result.reason)


@bp.post("/hooks/circleci")
@doc(
    "CircleCI outbound webhook (workflow-completed, job-completed), signature v1",
    "receivers",
    RECEIVER_ANSWERS,
    body=dict,
    headers={
        "circleci-signature": "`v1=<hex HMAC-SHA256 of the body with CIRCLECI_WEBHOOK_SECRET>`",
        "circleci-event-type": "`workflow-completed` or `job-completed`",
    },
)
def circleci():
    body = raw_body()
    _check_signature(body)
    data = any_json_body(body)
    event_type = data.get("type") or request.headers.get("circleci-event-type")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ApiError(400, "the payload has no `id`")
    if not _EVENT_ID.fullmatch(event_id):
        raise ApiError(400, "the payload's `id` must be 1-128 printable ASCII characters (CircleCI sends a UUID)")
    unsupported = events.unsupported(event_type)
    if unsupported is not None:
        return ignored(unsupported.reason)
    ctx = get_context()

    def handle() -> tuple[Response, str]:
        result = events.announce(ctx.config.circleci, str(event_type), data)
        if isinstance(result, events.IgnoredUnmatchedDeploy):
            _unmatched(ctx, result)
        return answer(ctx, result)

    return process_once(ctx, "circleci", event_id, handle)
