"""Asking a webhook gate: one signed POST, its answer classified as go / no-go / unreachable.

Signed as Sluice's other webhooks (integrations/notify/webhook.py): Standard Webhooks headers
(`webhook-id: <release>:<point>:<gate>`, the same on every retry so the receiver can de-duplicate;
`webhook-timestamp`; `webhook-signature`), `Sluice-Event: gate`, `Sluice-Delivery` (= webhook-id) and
the deprecated `Sluice-Signature: t=,v1=`. The caller (app/release/gate_checks.py) records the answer
and schedules retries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import requests

from app.core.config.gates import WebhookGate
from app.core.redact import redact_clip, url_secrets
from integrations.notify.interface import env_secret
from integrations.notify.webhook import USER_AGENT, parse_retry_after, signed

# Answers that mean "try again later", not "no": the receiver is overloaded or down.
RETRY_STATUSES = frozenset({408, 425, 429})
DETAIL_CHARS = 300


@dataclass(frozen=True)
class GateAnswer:
    status: Literal["go", "no_go", "unreachable"]
    detail: str
    http_status: int | None = None
    retry_after: float | None = None


def ask(gate: WebhookGate, payload: dict[str, Any], delivery_id: str, session: Any = None) -> GateAnswer:
    """POST the payload to the gate once (with its timeout, never following redirects)."""
    secret = env_secret(gate.secret_env, "the gate's signing secret")  # MissingSecret: not retried by callers
    secrets = ([secret] if secret else []) + url_secrets(gate.url)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Sluice-Delivery": delivery_id,
        "Sluice-Event": "gate",
    }
    if secret:
        headers.update(signed(secret, delivery_id, body))
    try:
        resp = (session or requests).post(
            gate.url, data=body, headers=headers, timeout=gate.timeout, allow_redirects=False
        )
    except requests.Timeout:
        return GateAnswer("unreachable", f"no answer within {gate.timeout:g}s")
    except requests.RequestException as exc:
        return GateAnswer("unreachable", f"{type(exc).__name__}: could not reach {gate.name}")
    reason = redact_clip(_reason(resp), secrets, DETAIL_CHARS)
    code = resp.status_code
    if 200 <= code < 300:
        if _explicit_no(resp):
            return GateAnswer("no_go", f"answered {code} with go: false" + (f": {reason}" if reason else ""), code)
        return GateAnswer("go", f"answered {code}" + (f": {reason}" if reason else ""), code)
    if code in RETRY_STATUSES or code >= 500:
        wait = parse_retry_after(resp.headers.get("Retry-After"))
        return GateAnswer("unreachable", f"answered {code}" + (f": {reason}" if reason else ""), code, wait)
    if 300 <= code < 400:
        # A moved gate is a configuration problem; holding (then failing at the timeout) says so.
        return GateAnswer("unreachable", f"answered {code} (redirects are not followed: fix the gate's url)", code)
    return GateAnswer("no_go", f"answered {code}" + (f": {reason}" if reason else ""), code)


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _explicit_no(resp: requests.Response) -> bool:
    data = _json(resp)
    return isinstance(data, dict) and data.get("go") is False


def _reason(resp: requests.Response) -> str:
    """`{"reason": ...}` (or "message"/"error") of a JSON answer, else the start of a text answer.
    Control characters are dropped: the reason is shown in logs, Slack and the dashboard."""
    data = _json(resp)
    text = ""
    if isinstance(data, dict):
        for key in ("reason", "message", "error"):
            if isinstance(data.get(key), str) and data[key].strip():
                text = data[key]
                break
    elif data is None:
        text = resp.text[:1000]
    return "".join(c if c.isprintable() else " " for c in text).strip()
