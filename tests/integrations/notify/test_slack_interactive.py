"""Slack's request signing and interaction parsing (integrations/notify/slack_interactive.py)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from integrations.notify.slack_interactive import SlackRequestError, parse, reply_allowed, signature, verify

# Slack's own worked example ("Verifying requests from Slack", api.slack.com/authentication).
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_signature_matches_slacks_worked_example() -> None:
    assert signature(SLACK_SECRET, SLACK_TS, SLACK_BODY) == SLACK_SIGNATURE
    verify(SLACK_SECRET, SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, now=int(SLACK_TS) + 10)


@pytest.mark.parametrize(
    ("timestamp", "given", "body", "now", "message"),
    [
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, int(SLACK_TS) + 301, "replay"),
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, int(SLACK_TS) - 301, "replay"),
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY + b"&x=1", int(SLACK_TS), "does not match"),
        (SLACK_TS, SLACK_SIGNATURE.replace("v0=", "v1="), SLACK_BODY, int(SLACK_TS), "does not match"),
        (None, SLACK_SIGNATURE, SLACK_BODY, int(SLACK_TS), "missing"),
        (SLACK_TS, None, SLACK_BODY, int(SLACK_TS), "missing"),
        ("1e9", SLACK_SIGNATURE, SLACK_BODY, int(SLACK_TS), "Unix seconds"),
    ],
)
def test_verify_refuses_with_401_and_says_why(
    timestamp: str | None, given: str | None, body: bytes, now: float, message: str
) -> None:
    with pytest.raises(SlackRequestError, match=message) as err:
        verify(SLACK_SECRET, timestamp, given, body, now)
    assert err.value.status == 401


def interaction(**over: object) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "alice"},
        "actions": [{"action_id": "sluice_approve", "value": json.dumps({"release": "r-1", "gate": "qa"})}],
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
    }
    payload.update(over)
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_parse_reads_the_click_and_who_made_it() -> None:
    click = parse(interaction())
    assert click.action == "sluice_approve" and click.value == {"release": "r-1", "gate": "qa"}
    assert click.who == "slack:U024BE7LH (alice)"
    assert click.response_url == "https://hooks.slack.com/actions/T0/1/abc"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=not-json",
        b"a=1&b=2&c=3&d=4&e=5&f=6&g=7",
        interaction(type="view_submission"),
        interaction(actions=[]),
        interaction(user={"id": "u<script>"}),
        interaction(actions=[{"action_id": "sluice_approve", "value": "plain"}]),
    ],
)
def test_parse_refuses_what_is_not_a_sluice_button_click(body: bytes) -> None:
    with pytest.raises(SlackRequestError) as err:
        parse(body)
    assert err.value.status == 400


def test_answers_go_only_to_slack_unless_a_host_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert reply_allowed("https://hooks.slack.com/actions/T0/1/abc")
    assert not reply_allowed("http://hooks.slack.com/actions/T0/1/abc")
    assert not reply_allowed("https://169.254.169.254/latest/meta-data")
    monkeypatch.setenv("SLACK_RESPONSE_URL_HOSTS", "127.0.0.1:9999")
    assert reply_allowed("http://127.0.0.1:9999/actions")
