"""Signed generic webhooks.

Signed as Standard Webhooks (app/core/webhook_signing.py), so receivers can verify with an
off-the-shelf library: `webhook-id: <delivery id>` (stable across retries, for de-duplication),
`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<t>.<body>">`.
Also `Sluice-Event: <event>`, `Sluice-Delivery` (= webhook-id), and, deprecated (to be removed in
the next release), `Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, which
`verify()` checks. Either way the timestamp is signed, so a captured request cannot be replayed
later than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Literal

import requests
from pydantic import Field

from app.core.config.base import Duration, EnvName
from app.core.redact import safe_url, url_secrets
from app.core.webhook_signing import headers as standard_headers
from integrations.notify.interface import HookBase, HookEnv, HookKind, Outcome, Plan, env_secret, render_payload

USER_AGENT = "Sluice-Webhook/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signed(secret: str, delivery_id: str, body: bytes) -> dict[str, str]:
    """The signature headers: Standard Webhooks', and the deprecated `Sluice-Signature`."""
    now = int(time.time())
    return {**standard_headers(secret, delivery_id, now, body), "Sluice-Signature": sign(secret, now, body)}


def verify(secret: str, header: str, body: bytes, tolerance: float = 300.0, now: float | None = None) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def post(
    url: str,
    payload: dict[str, Any],
    delivery_id: str,
    event: str,
    secret: str | None,
    timeout: float,
    session: requests.Session | None = None,
) -> Outcome:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Sluice-Delivery": delivery_id,
        "Sluice-Event": event,
    }
    if secret:
        headers.update(signed(secret, delivery_id, body))
    try:
        resp = (session or requests).post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Outcome(False, None, "", retryable=True, error=f"{type(exc).__name__}: could not reach the receiver")
    excerpt = resp.text[:4096]  # redacted, then cut shorter, by the delivery worker
    if 200 <= resp.status_code < 300:
        return Outcome(True, resp.status_code, excerpt, retryable=False)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    retryable = resp.status_code in (408, 425, 429) or resp.status_code >= 500
    return Outcome(False, resp.status_code, excerpt, retryable=retryable, retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class WebhookHook(HookBase):
    """A JSON POST, signed as Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: EnvName | None = Field(None, description="Environment variable holding the signing secret.")
    payload: dict[str, Any] | None = Field(
        None, description="Extra JSON fields; strings may use {service} {source_version} {target_version} ..."
    )
    timeout: Duration = 5.0


def plan(hook: WebhookHook, fields: dict[str, Any], config: Any) -> Plan:
    # Stored on the delivery (in Redis) and shown: never the URL's credentials or query (`?token=`).
    return safe_url(hook.url), render_payload(hook.payload, fields) if hook.payload else {}


def send(hook: WebhookHook, delivery: dict[str, Any], env: HookEnv | None = None) -> tuple[Outcome, list[str]]:
    secret = env_secret(hook.secret_env, "the signing secret")
    outcome = post(hook.url, delivery["payload"], delivery["id"], delivery["event"], secret, timeout=hook.timeout)
    return outcome, ([secret] if secret else []) + url_secrets(hook.url)


KIND = HookKind(WebhookHook, send, "a signed JSON POST to any URL", plan=plan)
