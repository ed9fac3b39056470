"""PagerDuty Events API v2: trigger an alert when a release fails, resolve it when a later release
of the same service succeeds (same dedup key: one alert per service, not one per release).

202 accepted. 400 (bad event) is not retried; 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from app.core.config.base import EnvName
from integrations.notify.http import call, failed
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

# A failed or aborted release triggers the service's alert; a succeeded one resolves it.
EVENTS = ("failed", "aborted", "succeeded")


def dedup_key(application: str, service: str, shadow: bool = False) -> str:
    """One alert per service; a shadow release's apart, so that it neither resolves nor joins a real one."""
    return f"sluice/{application}/{service}" + ("/shadow" if shadow else "")


def build_event(
    routing_key: str, event: str, release: dict[str, Any], severity: str, release_url: str | None
) -> dict[str, Any]:
    shadow = is_shadow(release)
    key = dedup_key(release["application"], release["service"], shadow)
    if event == "succeeded":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    summary = ("[shadow] " if shadow else "") + (
        f"Release of {release['service']} {release['target_version']} {event}: "
        f"{release.get('reason') or 'no reason recorded'}"
    )
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": summary[:1024],
            "source": f"sluice/{release['application']}",
            "severity": severity,
            "component": release["service"],
            "group": release["application"],
            "class": f"release {event}",
            "custom_details": {k: v for k, v in release.items() if v not in ("", None) and not k.startswith("ci.")}
            | {k.removeprefix("ci."): v for k, v in release.items() if k.startswith("ci.") and v not in ("", None)}
            | ({"shadow": True, "note": "shadow release: judged only, traffic was not moved"} if shadow else {}),
        },
    }
    links = []
    if release_url:
        links.append({"href": release_url, "text": f"Sluice release {release['release_id']}"})
    if release.get("ci.build_url"):
        links.append({"href": release["ci.build_url"], "text": "CI job"})
    if links:
        body["links"] = links
    return body


def enqueue(api_url: str, event: dict[str, Any], timeout: float) -> Outcome:
    outcome, _ = call("POST", api_url.rstrip("/") + "/v2/enqueue", timeout=timeout, body=event)
    return outcome


class PagerDutyHook(HookBase):
    """PagerDuty Events v2: trigger on failure (one alert per service), resolve when a later release succeeds."""

    type: Literal["pagerduty"]
    on: list[HookEvent] = Field(["failed", "succeeded"], min_length=1)

    @field_validator("on")
    @classmethod
    def _pages_only_for_outcomes(cls, events: list[str]) -> list[str]:
        # Only these mean something to an on-call rotation: a failure pages, a later success resolves.
        wrong = [e for e in events if e not in ("failed", "aborted", "succeeded")]
        if wrong:
            raise ValueError(
                f"PagerDuty acts on failed, aborted and succeeded only; remove {', '.join(wrong)} "
                "(a page for every started release would wake someone for nothing)"
            )
        return events

    routing_key_env: EnvName = Field(
        "PAGERDUTY_ROUTING_KEY", description="Environment variable holding the integration's routing key."
    )
    api_url: str = Field("https://events.pagerduty.com", pattern=r"^https?://")
    severity: Literal["critical", "error", "warning", "info"] = "error"
    public_url: PublicURL = None


def plan(hook: PagerDutyHook, fields: dict[str, Any], config: Any) -> Plan:
    return f"{hook.api_url.rstrip('/')}/v2/enqueue", {}


def send(hook: PagerDutyHook, delivery: dict[str, Any], env: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    if delivery["event"] not in EVENTS:  # `started` or `step_passed` must not page anyone
        return failed(
            f"a PagerDuty hook acts on {', '.join(EVENTS)} only, not {delivery['event']}: remove it from `on`"
        ), []
    key = required_secret(hook.routing_key_env, "the PagerDuty routing key")
    event = build_event(
        key, delivery["event"], delivery["payload"]["release"], hook.severity, release_url(hook, delivery["release_id"])
    )
    return enqueue(hook.api_url, event, timeout=hook.timeout), [key]


KIND = HookKind(PagerDutyHook, send, "PagerDuty Events v2: page on failure, resolve on a later success", plan=plan)
