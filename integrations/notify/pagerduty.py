"""PagerDuty Events API v2: trigger an alert when a release fails, resolve it when a later release
of the same service succeeds (same dedup key: one alert per service, not one per release).

202 accepted. 400 (bad event) is not retried; 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

from typing import Any

from integrations.notify.http import call
from integrations.notify.webhook import Outcome

# A failed or aborted release triggers the service's alert; a succeeded one resolves it.
EVENTS = ("failed", "aborted", "succeeded")


def dedup_key(application: str, service: str) -> str:
    return f"sluice/{application}/{service}"


def build_event(
    routing_key: str, event: str, release: dict[str, Any], severity: str, release_url: str | None
) -> dict[str, Any]:
    key = dedup_key(release["application"], release["service"])
    if event == "succeeded":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    summary = (
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
            | {k.removeprefix("ci."): v for k, v in release.items() if k.startswith("ci.") and v not in ("", None)},
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
