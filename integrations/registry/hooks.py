"""Every hook kind: `hook.type` -> (configuration model, planner, sender). Adding one is a line here.

The configuration's `hooks` union, its JSON Schema, delivery planning (app.release.hooks), sending
(workers.deliver via `send`) and `sluice kinds` are built from HOOKS, so a
type that is not registered cannot be configured, planned or sent.
"""

from __future__ import annotations

from typing import Any

from integrations.circleci import hooks as circleci
from integrations.kinds import Registry
from integrations.notify import pagerduty, slack, teams, webhook
from integrations.notify.interface import HookEnv, HookKind, MissingSecret, Outcome

__all__ = ["HOOKS", "MissingSecret", "send"]

HOOKS: Registry[HookKind] = Registry(
    "hook",
    [
        webhook.KIND,
        circleci.APPROVE,
        circleci.TRIGGER,
        circleci.CANCEL,
        slack.KIND,
        pagerduty.KIND,
        teams.KIND,
    ],
)


def send(hook: Any, delivery: dict[str, Any], env: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    """One attempt of a planned delivery, by its hook kind's sender: the Outcome and the secrets used
    (to redact from whatever is recorded). `env` is the process's Context (store, configuration)."""
    return HOOKS[hook.type].send(hook, delivery, env)
