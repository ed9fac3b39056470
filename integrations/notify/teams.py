"""Microsoft Teams: an Adaptive Card per release outcome, posted to a Workflows webhook.

Office 365 connectors (the old "Incoming Webhook") are retired; their replacement is a Workflows
(Power Automate) flow with the trigger "When a Teams webhook request is received", which takes a
`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
"content": <card>}]}` body and posts the card to a channel. Teams renders cards up to version 1.5;
this one is 1.4.

The flow's URL is the secret (its `sig` query parameter signs it; anyone holding it can post): it
comes from the environment and is redacted from everything recorded. Any 2xx is success (Workflows
answers 202). 429 (more than about 4 requests/s) is retried after Retry-After, 5xx with backoff;
413 (a message over 28 KB) and other 4xx are not retried, so the card is kept small: the reason
and check names are truncated and at most MAX_CHECKS checks are listed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field

from app.core.config.base import EnvName
from app.core.models import CheckResult
from integrations.notify.http import call
from integrations.notify.interface import (
    HookBase,
    HookEnv,
    HookEvent,
    HookKind,
    Outcome,
    Plan,
    PublicURL,
    is_shadow,
    release_url,
    required_secret,
)
from integrations.notify.slack import deciding_checks

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_CHECKS = 8
REASON_LIMIT = 1000
MESSAGE_LIMIT = 28 * 1024  # Teams refuses a larger message with 413
COLORS = {"succeeded": "Good", "failed": "Attention", "aborted": "Warning", "rollback": "Warning"}
VERBS = {
    "succeeded": "promoted",
    "failed": "failed and was rolled back",
    "aborted": "was aborted",
    "rollback": "is stable again (rollback)",
}


# What starts markup in Adaptive Cards' Markdown subset (CommonMark): links (`[`), emphasis, code,
# headings, quotes, HTML and entities. `(`, `-`, `!` only mean something after or before these.
_MARKDOWN = re.compile(r"([\\`*_~\[\]#<>|&])")


def plain(text: str) -> str:
    """Text shown as written: each Markdown character backslash-escaped (CommonMark), so a reason
    like `[fix](https://evil.example)` is not a disguised link and `**x**` not bold."""
    return _MARKDOWN.sub(r"\\\1", text)


def _clip(text: str, limit: int) -> str:
    """Cut, then escape (escaping first could cut an escape in half)."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return plain(text)


def _value(v: float | None) -> str:
    return "no data" if v is None else f"{v:.4g}"


def build_card(
    event: str, release: dict[str, Any], evaluations: list[CheckResult], release_url: str | None
) -> dict[str, Any]:
    """The Adaptive Card. `release` is the delivery's release fields (app.release.hooks.release_fields).

    TextBlocks and facts take a Markdown subset, so every value is escaped (`plain`): nothing a release
    carries is read as a link, emphasis or list."""
    service, target, source = release["service"], release["target_version"], release["source_version"]
    verb = VERBS.get(event, event.replace("_", " "))
    shadow = is_shadow(release)
    if shadow:  # judged only: nothing was promoted or rolled back
        verb = {"succeeded": "passed", "failed": "failed", "aborted": "was aborted"}.get(event, verb)
    facts = [
        {"title": "Service", "value": _clip(f"{service} (application {release['application']})", 200)},
        {"title": "Versions", "value": _clip(f"{source} → {target}", 200)},
        {"title": "State", "value": _clip(str(release.get("state") or event), 50)},
        {"title": "Policy", "value": _clip(f"{release.get('policy', '')} (step {release.get('step')})", 200)},
    ]
    if shadow:
        facts.append({"title": "Mode", "value": plain("shadow: judged only, traffic was not moved")})
    if release.get("reason"):
        facts.append({"title": "Reason", "value": _clip(str(release["reason"]), REASON_LIMIT)})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
            "color": COLORS.get(event, "Default"),
            "text": ("[shadow] " if shadow else "") + _clip(f"{service} {target} {verb}", 191),
        },
        {"type": "FactSet", "facts": facts},
    ]
    checks = deciding_checks(evaluations)
    if checks:
        lines = [
            f"{c.verdict.upper()} {_clip(c.name, 63)}: {_value(c.value)}"
            + (f" (stable {_value(c.stable_value)})" if c.stable_value is not None else "")
            + f" — {_clip(c.threshold, 100)}"
            for c in checks[:MAX_CHECKS]
        ]
        if len(checks) > MAX_CHECKS:
            lines.append(f"… and {len(checks) - MAX_CHECKS} more")
        body.append({"type": "TextBlock", "wrap": True, "isSubtle": True, "text": "\n\n".join(lines)})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if release_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": f"Release {release['release_id']}", "url": release_url}]
    message: dict[str, Any] = {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }
    if shadow:
        message["shadow"] = True
    return message


def message_size(message: dict[str, Any]) -> int:
    return len(json.dumps(message, separators=(",", ":")).encode())


class TeamsHook(HookBase):
    """A Microsoft Teams Workflows webhook. Its URL is a secret: it comes from the environment."""

    type: Literal["teams"]
    on: list[HookEvent] = Field(["succeeded", "failed", "aborted"], min_length=1)
    url_env: EnvName = Field("TEAMS_WEBHOOK_URL", description="Environment variable holding the Workflows webhook URL.")
    public_url: PublicURL = None


def plan(hook: TeamsHook, fields: dict[str, Any], config: Any) -> Plan:
    return f"teams workflows webhook (${hook.url_env})", {}


def url_secrets(url: str) -> list[str]:
    """What of the URL to redact: all of it, its query (the `sig` signature) and its path."""
    parts = urlsplit(url)
    secrets = [url, parts.path]
    if parts.query:
        secrets.append(parts.query)
        secrets += [value for _, value in parse_qsl(parts.query) if len(value) >= 8]
    secrets += [p for p in parts.path.split("/") if len(p) >= 16]  # the workflow id
    return [s for s in secrets if s]


def send(hook: TeamsHook, delivery: dict[str, Any], env: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    url = required_secret(hook.url_env, "the Teams Workflows webhook URL")
    evaluations = env.store.evaluations(delivery["release_id"]) if env is not None else []
    link = release_url(hook, delivery["release_id"])
    message = build_card(delivery["event"], delivery["payload"]["release"], evaluations, link)
    if message_size(message) > MESSAGE_LIMIT:  # only a pathological configuration gets here
        message = build_card(delivery["event"], delivery["payload"]["release"], [], link)
    outcome, _ = call("POST", url, timeout=hook.timeout, body=message)
    return outcome, url_secrets(url)


KIND = HookKind(TeamsHook, send, "a Microsoft Teams Adaptive Card via a Workflows webhook", plan=plan)
