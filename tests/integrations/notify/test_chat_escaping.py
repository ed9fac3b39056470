"""Chat text is escaped (issue #20 item 11): what an announcer controls (a CI build URL, a reason, a
check's name) cannot turn into a Slack link or mention, nor into Teams Markdown (a disguised link)."""

from __future__ import annotations

import json
import re

from integrations.notify.slack import build_message
from integrations.notify.teams import build_card

EVIL_URL = "https://evil.example/x|CI> <!channel"
RELEASE = {
    "release_id": "r-20261130080500-0a1b2c3d",
    "application": "shop",
    "service": "web",
    "source_version": "1.0.0",
    "target_version": "1.1.0",
    "state": "failed",
    "policy": "canary",
    "step": 1,
    "reason": "errors <!here> & [see the fix](https://evil.example/login) **now**",
    "ci.build_url": EVIL_URL,
}


def mrkdwn_texts(message: dict) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message)
    return found + [message["text"]]


def test_a_hostile_build_url_makes_no_slack_link_or_mention() -> None:
    message = build_message("failed", RELEASE, [], "https://sluice.example/releases/r-1")
    texts = mrkdwn_texts(message)
    joined = "\n".join(texts)
    assert "<!channel" not in joined and "<!here" not in joined
    links = re.findall(r"<([^>]*)>", joined)  # every <...> left is a link Sluice made
    assert links == ["https://sluice.example/releases/r-1|release r-20261130080500-0a1b2c3d"], links
    assert "evil.example/x" in joined  # still shown, as text
    assert "&lt;!channel" in joined and "&lt;!here&gt; &amp;" in joined


def test_a_safe_build_url_is_still_a_link() -> None:
    release = {**RELEASE, "ci.build_url": "https://app.circleci.com/pipelines/gh/acme/shop/12?a=1&b=2"}
    joined = "\n".join(mrkdwn_texts(build_message("failed", release, [], None)))
    assert "<https://app.circleci.com/pipelines/gh/acme/shop/12?a=1&amp;b=2|CI job>" in joined


def test_teams_facts_are_not_markdown() -> None:
    card = build_card("failed", RELEASE, [], None)["attachments"][0]["content"]
    reason = next(f["value"] for f in card["body"][1]["facts"] if f["title"] == "Reason")
    assert "[see the fix](https" not in reason and "**now**" not in reason
    assert r"\[see the fix\](https://evil.example/login)" in reason and r"\*\*now\*\*" in reason
    assert "https://evil.example/login" not in json.dumps(card.get("actions", []))
