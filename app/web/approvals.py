"""Approving a release's manual gate: `POST /api/v1/releases/<id>/approve` (API, CLI, dashboard) and
Slack's button clicks, `POST /hooks/slack/interactive` (verified with Slack's request signing)."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Literal

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.context import get_context
from app.core.names import NAME_RE
from app.release.control import ControlError, control
from app.release.gate_checks import ApprovalError, approve
from app.release.views import ReleaseDetail, release_detail
from app.web.audit import record
from app.web.auth import Caller, require_token
from app.web.bodies import parse_json, raw_body
from app.web.errors import ApiError, validation_detail
from app.web.openapi import doc, error
from app.web.responses import respond
from integrations.notify.slack import ABORT_ACTION, APPROVE_ACTION
from integrations.notify.slack_interactive import SIGNING_SECRET_ENV, SlackRequestError, parse, reply, verify

log = logging.getLogger("sluice.web")
bp = Blueprint("gates", __name__)
_RELEASE_ID = re.compile(r"^r-[A-Za-z0-9_-]{1,64}$")


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate: str | None = Field(
        None, pattern=NAME_RE.pattern, max_length=63, description="The manual gate (default: the one waiting)."
    )
    by: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.@+ -]{1,64}$",
        description="Who approves, for a shared token (the CLI sends the local user name): recorded as "
        "`api:<by>`; a person's token records the person's name and ignores this.",
    )


class ApprovalAnswer(BaseModel):
    status: Literal["approved", "already_approved"]
    message: str
    gate: str
    point: str
    approved_by: str
    release: ReleaseDetail


@bp.post("/api/v1/releases/<release_id>/approve")
@doc(
    "Approve the manual gate a release is waiting for (again: answers who approved it first)",
    "releases",
    {
        200: (ApprovalAnswer, "Approved now, or already approved (`status` says which, and by whom)."),
        400: error("The body has invalid fields."),
        401: error("Missing or wrong bearer token."),
        403: error("The token's role does not steer (operator or admin needed)."),
        404: error("No such release, or no such manual gate."),
        409: error("The release is not waiting for an approval (or has ended)."),
    },
    body=ApproveRequest,
    body_required=False,
    security=["bearer"],
)
def approve_release(release_id: str):
    who = require_token()
    body = ApproveRequest()
    raw = raw_body()
    if raw.strip() and request.mimetype == "application/json":
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise ApiError(400, 'the body must be a JSON object, e.g. {"gate": "qa", "by": "alice"}')
        try:
            body = ApproveRequest.model_validate(data, strict=True)
        except ValidationError as exc:
            raise ApiError(400, "the body has invalid fields", validation_detail(exc)) from None
    ctx = get_context()
    try:
        done = approve(ctx, release_id, by=who.actor(body.by), via="api", gate=body.gate)
    except ApprovalError as exc:
        raise ApiError(exc.status, str(exc)) from None
    if not done.already:
        record(who, "approve", release_id, f"gate {done.gate}", body.by)
    release = ctx.store.get(release_id) or done.release
    message = (
        f"gate '{done.gate}' was already approved by {done.by}"
        if done.already
        else f"gate '{done.gate}' approved by {done.by}"
    )
    answer = ApprovalAnswer(
        status="already_approved" if done.already else "approved",
        message=message,
        gate=done.gate,
        point=done.point,
        approved_by=done.by,
        release=release_detail(ctx, release),
    )
    return respond(answer)


class SlackAnswer(BaseModel):
    """What the clicker is told (also sent to the interaction's response_url)."""

    text: str
    response_type: Literal["ephemeral"] = "ephemeral"
    replace_original: bool = False


@bp.post("/hooks/slack/interactive")
@doc(
    "Slack's interaction request (a click on Approve / Abort in an approval message)",
    "receivers",
    {
        200: (SlackAnswer, "What happened, in words (approved, already approved by X, aborted, or why not)."),
        400: error("Not a button click Sluice sent (malformed payload)."),
        401: error("Missing or wrong X-Slack-Signature, or a timestamp older than 5 minutes (a replay)."),
    },
    headers={
        "X-Slack-Signature": "v0=<hex HMAC-SHA256 of 'v0:<timestamp>:<body>' with SLACK_SIGNING_SECRET>",
        "X-Slack-Request-Timestamp": "Unix seconds; refused when more than 5 minutes from now",
    },
)
def slack_interactive():
    secret = os.environ.get(SIGNING_SECRET_ENV)
    if not secret:
        raise ApiError(401, f"Slack interactivity is not enabled: set {SIGNING_SECRET_ENV} where Sluice runs")
    body = raw_body()
    try:
        verify(
            secret,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            body,
            now=time.time(),
        )
        click = parse(body)
    except SlackRequestError as exc:
        raise ApiError(exc.status, str(exc)) from None
    release_id, gate, point = (click.value.get(k) for k in ("release", "gate", "point"))
    if not (isinstance(release_id, str) and _RELEASE_ID.match(release_id)):
        raise ApiError(400, "the button does not name a release")
    ctx = get_context()
    if not ctx.config.slack.allows(click.user_id):
        log.warning("slack click by %s refused: not in slack.approvers", click.who)
        record(Caller(click.who, "none"), "denied", release_id, f"slack {click.action[:40]}: not in slack.approvers")
        text = (
            f"Not done: {click.user_id} is not in Sluice's `slack.approvers`; ask an admin to add your Slack "
            "user id, or use `sluice approve` / the API"
        )
        return respond(SlackAnswer(text=text))
    clicker = Caller(click.who, "operator")
    if click.action == APPROVE_ACTION:
        if not (isinstance(gate, str) and isinstance(point, str) and len(gate) <= 63 and len(point) <= 32):
            raise ApiError(400, "the Approve button does not name a gate")
        try:
            done = approve(ctx, release_id, by=click.who, via="slack", gate=gate, point=point)
            text = (
                f"Gate {done.gate} of {release_id} was already approved by {done.by}."
                if done.already
                else f"Approved: gate {done.gate} of {release_id}, by {done.by}."
            )
            if not done.already:
                record(clicker, "approve", release_id, f"gate {done.gate} (slack)")
        except ApprovalError as exc:
            text = f"Not approved: {exc}"
    elif click.action == ABORT_ACTION:
        try:
            # Slack wants its answer within 3 s: wait a second at most for a worker (app/release/handoff.py).
            release = control(ctx, release_id, "abort", actor=click.who, wait=1.0)
            record(clicker, "abort", release_id, "slack")
            where = "traffic is back on stable" if release.weights_applied else "a worker puts traffic back on stable"
            text = f"Aborted {release_id} ({release.service} {release.target_version}): {where}."
        except ControlError as exc:
            text = f"Not aborted: {exc}"
    else:
        raise ApiError(400, f"unknown action {click.action[:40]!r}: not one of Sluice's buttons")
    answer = SlackAnswer(text=text)
    if click.response_url:
        reply(click.response_url, answer.model_dump())  # best effort: the click is recorded either way
    return respond(answer)
