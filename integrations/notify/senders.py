"""One sender per hook type: turn a planned delivery into one outside call.

A sender returns the attempt's Outcome and the secrets it used (so they can be redacted
from whatever is recorded). Adding a hook type = a config model in app/config.py, a
sender function here, and one entry in SENDERS.

Senders get the process's Context (for the store and configuration): Slack reads the
release's evaluations at send time, CircleCI senders read the API base URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from integrations.circleci.api import CircleCI
from integrations.notify import pagerduty, slack, webhook
from integrations.notify.http import failed
from integrations.notify.webhook import Outcome

if TYPE_CHECKING:
    from app.context import Context


class MissingSecret(Exception):
    """The environment variable that should hold a hook's secret is not set: not retryable."""


def env_secret(name: str | None, what: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise MissingSecret(f"environment variable {name} ({what}) is not set")
    return value


def _required_secret(name: str, what: str) -> str:
    value = env_secret(name, what)
    assert value is not None
    return value


def send_webhook(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    secret = env_secret(hook.secret_env, "the signing secret")
    outcome = webhook.post(
        hook.url, delivery["payload"], delivery["id"], delivery["event"], secret, timeout=hook.timeout
    )
    return outcome, [secret] if secret else []


# --- CircleCI -------------------------------------------------------------------------------------


def _circleci(hook: Any, ctx: Context | None) -> tuple[CircleCI, str]:
    from app.hooks import circleci_api_url

    token = _required_secret(hook.token_env, "a CircleCI API token")
    base = circleci_api_url(ctx.config) if ctx is not None else os.environ.get("CIRCLECI_API_URL", "")
    return CircleCI(token, base or "https://circleci.com/api/v2", timeout=hook.timeout), token


def send_circleci_approve(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    client, token = _circleci(hook, ctx)
    workflow = (delivery["payload"].get("circleci") or {}).get("workflow_id") or ""
    return client.approve(workflow, hook.job_name), [token]


def send_circleci_cancel(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    client, token = _circleci(hook, ctx)
    workflow = (delivery["payload"].get("circleci") or {}).get("workflow_id") or ""
    return client.cancel_workflow(workflow), [token]


def send_circleci_trigger(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    client, token = _circleci(hook, ctx)
    spec = delivery["payload"].get("circleci") or {}
    outcome = client.trigger_pipeline(
        spec.get("project_slug") or "",
        spec.get("parameters") or {},
        branch=spec.get("branch"),
        tag=spec.get("tag"),
        definition_id=spec.get("definition_id"),
    )
    return outcome, [token]


# --- Slack, PagerDuty -------------------------------------------------------------------------------


def release_url(hook: Any, release_id: str) -> str | None:
    base = hook.public_url or os.environ.get("SLUICE_PUBLIC_URL")
    return f"{base.rstrip('/')}/api/v1/releases/{release_id}" if base else None


def send_slack(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    url = _required_secret(hook.url_env, "the Slack incoming webhook URL")
    evaluations = ctx.store.evaluations(delivery["release_id"]) if ctx is not None else []
    message = slack.build_message(
        delivery["event"], delivery["payload"]["release"], evaluations, release_url(hook, delivery["release_id"])
    )
    # The whole URL is the secret, and so is its path (hooks.slack.com/services/T../B../<secret>).
    path = urlsplit(url).path
    return slack.post(url, message, timeout=hook.timeout), [url, path] + [p for p in path.split("/") if len(p) >= 8]


def send_pagerduty(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    if delivery["event"] not in pagerduty.EVENTS:  # `started` or `step_passed` must not page anyone
        return failed(
            f"a PagerDuty hook acts on {', '.join(pagerduty.EVENTS)} only, not {delivery['event']}: remove it from `on`"
        ), []
    key = _required_secret(hook.routing_key_env, "the PagerDuty routing key")
    event = pagerduty.build_event(
        key, delivery["event"], delivery["payload"]["release"], hook.severity, release_url(hook, delivery["release_id"])
    )
    return pagerduty.enqueue(hook.api_url, event, timeout=hook.timeout), [key]


Sender = Callable[[Any, dict[str, Any], Any], tuple[Outcome, list[str]]]
SENDERS: dict[str, Sender] = {
    "webhook": send_webhook,
    "circleci_approve": send_circleci_approve,
    "circleci_trigger_pipeline": send_circleci_trigger,
    "circleci_cancel_workflow": send_circleci_cancel,
    "slack": send_slack,
    "pagerduty": send_pagerduty,
}


def send(hook: Any, delivery: dict[str, Any], ctx: Context | None = None) -> tuple[Outcome, list[str]]:
    return SENDERS[hook.type](hook, delivery, ctx)
