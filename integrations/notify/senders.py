"""Send one planned delivery with its hook kind's sender (see integrations/notify/registry.py).

A sender returns the attempt's Outcome and the secrets it used (so they can be redacted
from whatever is recorded). Senders get the process's Context (for the store and
configuration): Slack reads the release's evaluations at send time, CircleCI senders read
the API base URL.
"""

from __future__ import annotations

from typing import Any

from integrations.notify.interface import HookEnv, MissingSecret, Outcome, env_secret
from integrations.notify.registry import HOOKS

__all__ = ["MissingSecret", "env_secret", "send"]


def send(hook: Any, delivery: dict[str, Any], ctx: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    return HOOKS[hook.type].send(hook, delivery, ctx)
