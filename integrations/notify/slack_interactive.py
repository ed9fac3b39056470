"""Slack's interaction requests (a click on a message's button): verification and parsing.

Slack signs each request: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
"v0:<X-Slack-Request-Timestamp>:<raw body>")>`. A request whose timestamp is more than five
minutes from now is refused, so a captured request cannot be replayed later. The body is
`application/x-www-form-urlencoded` with one field, `payload`, holding the interaction as JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from pydantic import Field

from app.core.config.base import Strict

log = logging.getLogger("sluice.slack")

REPLAY_WINDOW = 300.0
SIGNING_SECRET_ENV = "SLACK_SIGNING_SECRET"  # noqa: S105 - the variable's name, not a secret
_ID_RE = re.compile(r"^[A-Z0-9]{1,32}$")  # Slack user ids: U024BE7LH, W012A3CDE


class SlackConfig(Strict):
    """Who may click Approve / Abort in Slack: anyone in the workspace can see the message, so only
    the listed user ids are obeyed (none listed: every click is refused)."""

    approvers: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="Slack user ids (e.g. U024BE7LH) whose Approve and Abort clicks Sluice obeys.",
    )

    def allows(self, user_id: str) -> bool:
        return user_id in self.approvers


class SlackRequestError(Exception):
    """The request is not a valid interaction: `status` 401 (not from Slack) or 400 (malformed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return "v0=" + mac


def verify(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> None:
    """Raise SlackRequestError(401) unless Slack signed this body with `secret` within the replay window."""
    if not timestamp or not given:
        raise SlackRequestError(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature: not a Slack request")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise SlackRequestError(401, "X-Slack-Request-Timestamp must be Unix seconds")
    if abs(now - int(timestamp)) > REPLAY_WINDOW:
        raise SlackRequestError(
            401, f"X-Slack-Request-Timestamp is more than {REPLAY_WINDOW:.0f}s from now: refused as a replay"
        )
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode()):
        raise SlackRequestError(
            401, f"X-Slack-Signature does not match the body (v0 HMAC-SHA256 with {SIGNING_SECRET_ENV})"
        )


@dataclass(frozen=True)
class ButtonClick:
    action: str  # the button's action_id
    value: dict[str, Any]  # what the button carries (release, point, gate)
    user_id: str
    user_name: str
    response_url: str | None

    @property
    def who(self) -> str:
        """How the approver is recorded: Slack's user id (stable) and name (readable)."""
        return f"slack:{self.user_id} ({self.user_name})" if self.user_name else f"slack:{self.user_id}"


def parse(body: bytes) -> ButtonClick:
    """The first action of a `block_actions` interaction. SlackRequestError(400) when it is not one."""
    try:
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
    except ValueError:  # more fields than an interaction has
        raise SlackRequestError(
            400, "the body must be form-encoded with a `payload` field (Slack's interaction)"
        ) from None
    raw = form.get("payload", [None])[0]
    if raw is None:
        raise SlackRequestError(400, "the body must be form-encoded with a `payload` field (Slack's interaction)")
    try:
        data = json.loads(raw)
    except ValueError:
        raise SlackRequestError(400, "`payload` is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "block_actions":
        raise SlackRequestError(400, "only block_actions interactions (button clicks) are handled")
    actions, user = data.get("actions"), data.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict) or not isinstance(user, dict):
        raise SlackRequestError(400, "the interaction has no action or no user")
    action = actions[0]
    user_id = user.get("id")
    if not isinstance(user_id, str) or not _ID_RE.match(user_id):
        raise SlackRequestError(400, "the interaction's user has no valid Slack id")
    name = user.get("username") or user.get("name") or ""
    name = "".join(c for c in str(name) if c.isprintable())[:80]
    try:
        value = json.loads(action.get("value") or "")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise SlackRequestError(400, "the button's value is not one of Sluice's (JSON with release, point, gate)")
    response_url = data.get("response_url") if isinstance(data.get("response_url"), str) else None
    return ButtonClick(str(action.get("action_id", "")), value, user_id, name, response_url)


# Where an interaction's answer may be posted: Slack's own host (https). A test or a proxy adds its
# hosts with SLACK_RESPONSE_URL_HOSTS (comma-separated host[:port]; http is then allowed for them).
RESPONSE_HOSTS = ("hooks.slack.com",)
REPLY_TIMEOUT = 2.0


def reply_allowed(url: str) -> bool:
    parts = urlsplit(url)
    extra = [h.strip() for h in os.environ.get("SLACK_RESPONSE_URL_HOSTS", "").split(",") if h.strip()]
    if parts.scheme == "https" and parts.hostname in RESPONSE_HOSTS:
        return True
    return parts.scheme in ("http", "https") and parts.netloc in extra


def reply(response_url: str, message: dict[str, Any]) -> bool:
    """Tell the clicker what happened, through the interaction's response_url (Slack ignores the HTTP
    answer's body for button clicks). One attempt with a short timeout: Slack waits 3 s for us, and
    the click is already recorded on the release whatever this call does."""
    if not reply_allowed(response_url):
        log.warning("not answering to response_url on an unexpected host: %s", urlsplit(response_url).hostname)
        return False
    try:
        resp = requests.post(response_url, json=message, timeout=REPLY_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        log.warning("could not answer the Slack interaction: %s", type(exc).__name__)
        return False
    return 200 <= resp.status_code < 300
