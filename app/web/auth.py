"""Bearer-token and HMAC authentication for write endpoints."""

from __future__ import annotations

import hashlib
import hmac
import os

from flask import request

from app.web.errors import ApiError


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token() -> None:
    """Authorization: Bearer $SLUICE_API_TOKEN."""
    expected = os.environ.get("SLUICE_API_TOKEN")
    if not expected:
        raise ApiError(401, "this server has no API token: set SLUICE_API_TOKEN where Sluice runs")
    given = _bearer()
    if given is None:
        raise ApiError(
            401,
            "missing bearer token: send `Authorization: Bearer <SLUICE_API_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def require_token_or_signature(body: bytes) -> None:
    """Deploy notifications: the API token, or `X-Sluice-Signature: sha256=<hex HMAC of the body>`
    with SLUICE_DEPLOY_SECRET (for senders that should not hold the API token)."""
    signature = request.headers.get("X-Sluice-Signature")
    secret = os.environ.get("SLUICE_DEPLOY_SECRET")
    if signature is not None:
        if not secret:
            raise ApiError(401, "signed notifications are not enabled: set SLUICE_DEPLOY_SECRET on the server")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
            raise ApiError(401, "signature does not match the body (HMAC-SHA256 with SLUICE_DEPLOY_SECRET)")
        return
    require_token()
