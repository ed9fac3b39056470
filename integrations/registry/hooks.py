"""Every hook kind: `hook.type` -> (configuration model, planner, sender). Adding one is a line here.

The configuration's `hooks` union, its JSON Schema, delivery planning (app.hooks), sending
(workers.deliver via integrations.notify.senders) and `sluice kinds` are built from HOOKS, so a
type that is not registered cannot be configured, planned or sent.
"""

from __future__ import annotations

from integrations.circleci import hooks as circleci
from integrations.kinds import Registry
from integrations.notify import pagerduty, slack, webhook
from integrations.notify.interface import HookKind

HOOKS: Registry[HookKind] = Registry(
    "hook",
    [
        webhook.KIND,
        circleci.APPROVE,
        circleci.TRIGGER,
        circleci.CANCEL,
        slack.KIND,
        pagerduty.KIND,
    ],
)
