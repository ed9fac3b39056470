"""Slack incoming webhooks: a message per release outcome, with the checks that decided it.

The webhook URL is the secret (anyone holding it can post): it comes from the environment and is
redacted from everything recorded. Slack answers 200 `ok`; 400 `invalid_payload`, 403, 404 and
410 are not retried; 429 is retried after Retry-After; 5xx with backoff.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit

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

ICONS = {
    "approval_requested": ":raised_hand:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "aborted": ":octagonal_sign:",
    "started": ":rocket:",
    "rollback": ":rewind:",
}
MAX_CHECKS = 12
TEXT_LIMIT = 2900  # a section's text is at most 3000 characters


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# A URL Slack can carry in `<url|label>`: http(s), nothing that ends the link or starts a label.
_LINKABLE = re.compile(r"^https?://[^\s<>|]+$")


def link(url: str, label: str) -> str:
    """`<url|label>` when the URL cannot break out of the link (a `|`, `>` or space in it would let an
    announcer choose the label or add a mention); otherwise the URL as escaped text, not a link."""
    if _LINKABLE.fullmatch(url):
        return f"<{escape(url)}|{escape(label)}>"
    return f"{escape(label)}: {escape(url)}"


def deciding_checks(evaluations: list[CheckResult]) -> list[CheckResult]:
    """The latest result of each check: what the release was judged on when it ended."""
    latest: dict[str, CheckResult] = {}
    for result in evaluations:
        if result.name not in latest or result.at >= latest[result.name].at:
            latest[result.name] = result
    return sorted(latest.values(), key=lambda r: (r.verdict == "pass", r.name))


def _value(v: float | None) -> str:
    return "no data" if v is None else f"{v:.4g}"


def build_message(
    event: str,
    release: dict[str, Any],
    evaluations: list[CheckResult],
    release_url: str | None,
    gate: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`release` is the delivery's release fields (app.release.hooks.release_fields); `gate` ({point, gate}) the
    manual gate an `approval_requested` message asks about (it gets Approve / Abort buttons)."""
    service, target, source = release["service"], release["target_version"], release["source_version"]
    icon = ICONS.get(event, ":information_source:")
    verb = {
        "succeeded": "promoted",
        "failed": "failed and was rolled back",
        "aborted": "was aborted",
        "rollback": "is stable again (rollback)",
    }.get(event, event.replace("_", " "))
    shadow = is_shadow(release)
    if shadow:  # judged only: nothing was promoted or rolled back
        verb = {"succeeded": "passed", "failed": "failed", "aborted": "was aborted"}.get(event, verb)
    mark = "[shadow] " if shadow else ""
    text = f"{icon} {mark}{service} {target} {verb} ({source} -> {target}, application {release['application']})"
    if shadow:
        text += "; shadow release: judged only, traffic was not moved"
    fields = [
        f"*Service*\n{escape(service)}",
        f"*Versions*\n{escape(source)} → {escape(target)}",
        f"*Outcome*\n{escape(release.get('state') or event)}",
        f"*Policy*\n{escape(str(release.get('policy', '')))} (step {release.get('step')})",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{mark}{service} {target}: {event}"[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": escape(text)[:TEXT_LIMIT]},
            "fields": [{"type": "mrkdwn", "text": f} for f in fields],
        },
    ]
    if release.get("reason"):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ("*Why*\n" + escape(release["reason"]))[:TEXT_LIMIT]},
            }
        )
    checks = deciding_checks(evaluations)
    if checks:
        lines = [
            f"{'✅' if c.verdict == 'pass' else '❌' if c.verdict == 'fail' else '⚪'} *{escape(c.name)}* "
            f"{_value(c.value)}"
            + (f" (stable {_value(c.stable_value)})" if c.stable_value is not None else "")
            + f" — {escape(c.threshold)} — {c.verdict.upper()}"
            for c in checks[:MAX_CHECKS]
        ]
        if len(checks) > MAX_CHECKS:
            lines.append(f"… and {len(checks) - MAX_CHECKS} more")
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": ("*Checks*\n" + "\n".join(lines))[:TEXT_LIMIT]}}
        )
    links = []
    if release_url:
        links.append(link(release_url, f"release {release['release_id']}"))
    if release.get("ci.build_url"):
        links.append(link(str(release["ci.build_url"]), "CI job"))
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    if event == "approval_requested" and gate is not None:
        text = f":raised_hand: {service} {target} is waiting for approval: {gate['gate']}"
        blocks[0]["text"]["text"] = f"{service} {target}: approve {gate['gate']}?"[:150]
        blocks.append(approval_buttons(release["release_id"], gate))
    # The top-level text (notifications, fallback) is mrkdwn too.
    message: dict[str, Any] = {"text": escape(text), "blocks": blocks}
    if shadow:
        message["shadow"] = True
    return message


# The buttons' action ids: what /hooks/slack/interactive (app/web/slack.py) acts on.
APPROVE_ACTION = "sluice_approve"
ABORT_ACTION = "sluice_abort"


def approval_buttons(release_id: str, gate: dict[str, str]) -> dict[str, Any]:
    """Approve / Abort, each carrying which release and gate it answers (Slack sends the value back)."""
    value = json.dumps({"release": release_id, "point": gate["point"], "gate": gate["gate"]}, separators=(",", ":"))
    return {
        "type": "actions",
        "block_id": "sluice_gate",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": ABORT_ACTION,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Abort"},
                "value": value,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Abort the release?"},
                    "text": {"type": "plain_text", "text": "All traffic goes back to the stable version."},
                    "confirm": {"type": "plain_text", "text": "Abort"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            },
        ],
    }


def post(url: str, message: dict[str, Any], timeout: float) -> Outcome:
    outcome, _ = call("POST", url, timeout=timeout, body=message)
    return outcome


class SlackHook(HookBase):
    """A Slack incoming webhook. Its URL is a secret: it comes from the environment (`url_env`)."""

    type: Literal["slack"]
    on: list[HookEvent] = Field(["succeeded", "failed", "aborted"], min_length=1)
    url_env: EnvName = Field("SLACK_WEBHOOK_URL", description="Environment variable holding the webhook URL.")
    public_url: PublicURL = None


def plan(hook: SlackHook, fields: dict[str, Any], config: Any) -> Plan:
    return f"slack incoming webhook (${hook.url_env})", {}


def send(hook: SlackHook, delivery: dict[str, Any], env: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    url = required_secret(hook.url_env, "the Slack incoming webhook URL")
    evaluations = env.store.evaluations(delivery["release_id"]) if env is not None else []
    payload = delivery["payload"]
    url_of_release = release_url(hook, delivery["release_id"])
    message = build_message(delivery["event"], payload["release"], evaluations, url_of_release, payload.get("gate"))
    # The whole URL is the secret, and so is its path (hooks.slack.com/services/T../B../<secret>).
    path = urlsplit(url).path
    return post(url, message, timeout=hook.timeout), [url, path] + [p for p in path.split("/") if len(p) >= 8]


KIND = HookKind(SlackHook, send, "a Slack incoming webhook message with the deciding checks", plan=plan)
