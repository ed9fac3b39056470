"""`POST /hooks/argocd` and `POST /hooks/argo-rollouts`: Argo notifications start releases.

Authenticated by `Authorization: Bearer $SLUICE_INTAKE_TOKEN` (or the API token; Argo's webhook
service cannot sign, and an intake token can only announce deploys).
Bodies are the ones rendered by the templates in integrations/argo/, accepted as JSON whatever
the Content-Type (Argo CD sends none unless configured). Which notifications announce which
version is the integration's business (integrations/argo/notifications.py); one event (its
`event_key`) is processed once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response

from app.context import get_context
from app.core.announcements import Announcement, Ignored
from app.web.auth import require_intake_token
from app.web.bodies import any_json_body, raw_body
from app.web.openapi import RECEIVER_ANSWERS, doc
from app.web.receivers import ignored, process_once, start
from integrations.argo.config import ArgoConfig
from integrations.argo.notifications import announce_argocd, announce_rollout

bp = Blueprint("argo", __name__)


def _receive(source: str, announce: Callable[[ArgoConfig, dict[str, Any]], Announcement | Ignored]) -> Response:
    require_intake_token()
    data = any_json_body(raw_body())
    ctx = get_context()
    result = announce(ctx.config.argo, data)
    if isinstance(result, Ignored):
        return ignored(result.reason)
    assert result.event_key is not None
    return process_once(ctx, source, result.event_key, lambda: start(ctx, result))


@bp.post("/hooks/argocd")
@doc("Argo CD notification (a sync of a new version)", "receivers", RECEIVER_ANSWERS, body=dict, security=["bearer"])
def argocd():
    return _receive("argocd", announce_argocd)


@bp.post("/hooks/argo-rollouts")
@doc(
    "Argo Rollouts notification (a rollout of a new version)",
    "receivers",
    RECEIVER_ANSWERS,
    body=dict,
    security=["bearer"],
)
def argo_rollouts():
    return _receive("argo-rollouts", announce_rollout)
