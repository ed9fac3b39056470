"""The `rollback` hook event (app/release/rollback.py) in the people-facing hook kinds, and where it is refused."""

from __future__ import annotations

import pytest

from app.config_file.loader import ConfigError, parse_config
from integrations.notify.slack import build_message
from integrations.notify.teams import build_card
from tests.support.fakes import config_text

RELEASE = {
    "release_id": "r-20261130080500-0a1b2c3d",
    "application": "shop",
    "service": "web",
    "source_version": "1.1.0",  # the version taken out
    "target_version": "1.0.0",  # the previous one, stable again
    "state": "succeeded",
    "policy": "(rollback)",
    "step": 1,
    "reason": "rolled back by alice: checkout is broken",
}


def test_slack_and_teams_say_which_version_is_stable_again() -> None:
    slack = build_message("rollback", RELEASE, [], None)
    assert slack["text"].startswith(":rewind: web 1.0.0 is stable again (rollback) (1.1.0 -&gt; 1.0.0")
    card = build_card("rollback", RELEASE, [], None)
    content = card["attachments"][0]["content"]
    assert "is stable again (rollback)" in str(content) and "rolled back by alice" in str(content)


def test_hooks_may_subscribe_to_rollback_but_pagerduty_may_not() -> None:
    ok = "  - {name: ci, type: webhook, on: [failed, rollback], url: http://127.0.0.1:9/x}\n"
    assert parse_config(config_text(ok)).hooks[0].on == ["failed", "rollback"]
    paging = "  - {name: page, type: pagerduty, on: [failed, rollback]}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(config_text(paging))
    assert "remove rollback" in str(refused.value.problems)
