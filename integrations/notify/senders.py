"""One sender per hook type: turn a planned delivery into one outside call.

A sender returns the attempt's Outcome and the secrets it used (so they can be redacted
from whatever is recorded). Adding a hook type = a config model in app/config.py, a
sender function here, and one entry in SENDERS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from integrations.notify import webhook
from integrations.notify.webhook import Outcome


class MissingSecret(Exception):
    """The environment variable that should hold a hook's secret is not set: not retryable."""


def env_secret(name: str | None, what: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise MissingSecret(f"environment variable {name} ({what}) is not set")
    return value


def send_webhook(hook: Any, delivery: dict[str, Any]) -> tuple[Outcome, list[str]]:
    secret = env_secret(hook.secret_env, "the signing secret")
    outcome = webhook.post(
        hook.url, delivery["payload"], delivery["id"], delivery["event"], secret, timeout=hook.timeout
    )
    return outcome, [secret] if secret else []


Sender = Callable[[Any, dict[str, Any]], tuple[Outcome, list[str]]]
SENDERS: dict[str, Sender] = {
    "webhook": send_webhook,
}


def send(hook: Any, delivery: dict[str, Any]) -> tuple[Outcome, list[str]]:
    return SENDERS[hook.type](hook, delivery)
