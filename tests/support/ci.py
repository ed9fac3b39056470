"""CI / on-call test helpers: the tokens and secrets the tests configure, a configuration with every
hook kind, CircleCI payloads and their signatures."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from app.context import Context
from app.core.models import Release
from integrations.circleci.events import sign
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty
from tests.support.fakes import BASE_CONFIG, FakePrometheus

CIRCLE_TOKEN = "circle-api-token-0123456789abcdef"
WEBHOOK_SECRET = "circleci-webhook-secret-for-tests"
API_TOKEN = "sluice-api-token-for-tests"
INTAKE_TOKEN = "sluice-intake-token-for-tests"  # the orb announces with it (announce only)
READ_TOKEN = "sluice-read-token-for-tests"  # the orb waits with it (reads only)
PD_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"
SLUG = "gh/acme/shop"
PUBLIC_URL = "https://sluice.example.com"


def ci_config(circle: FakeCircleCI, pagerduty: FakePagerDuty, extra_hooks: str = "") -> str:
    return (
        BASE_CONFIG
        + f"""
hooks:
  - name: approve
    type: circleci_approve
    timeout: 2s
    max_attempts: 3
  - name: cleanup-old
    type: circleci_trigger_pipeline
    on: [succeeded]
    branch: main
    parameters: {{cleanup: true, version: "{{source_version}}"}}
    timeout: 2s
    max_attempts: 3
  - name: cleanup-failed
    type: circleci_trigger_pipeline
    on: [failed]
    branch: main
    parameters: {{cleanup: true, version: "{{target_version}}"}}
    timeout: 2s
    max_attempts: 3
  - name: slack
    type: slack
    on: [succeeded, failed]
    timeout: 2s
    max_attempts: 3
  - name: pager
    type: pagerduty
    api_url: {pagerduty.url}
    timeout: 2s
    max_attempts: 3
{extra_hooks}
circleci:
  api_url: {circle.base}
  projects:
    - slug: {SLUG}
      deploys:
        - {{job: deploy, service: api, version: "2.0.{{pipeline.number}}"}}
        - {{workflow: ship-web, service: web, version: "{{pipeline.vcs.revision_short}}"}}
argo:
  applications:
    - {{name: shop-api, service: api}}
    - {{name: shop-web, service: web, version_from: revision}}
  rollouts:
    - {{name: api-rollout, service: api, image: ghcr.io/acme/api}}
"""
    )


def job_completed(
    job: str = "deploy",
    status: str = "success",
    number: int = 371,
    workflow_id: str | None = None,
    event_id: str | None = None,
    slug: str = SLUG,
) -> dict[str, Any]:
    """A job-completed payload shaped like CircleCI's documented sample."""
    workflow_id = workflow_id or str(uuid.uuid4())
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": "job-completed",
        "happened_at": "2026-11-26T08:05:16.000Z",
        "webhook": {"id": str(uuid.uuid4()), "name": "sluice"},
        "project": {"id": str(uuid.uuid4()), "name": "shop", "slug": slug},
        "organization": {"id": str(uuid.uuid4()), "name": "acme"},
        "workflow": {
            "id": workflow_id,
            "name": "release",
            "created_at": "2026-11-26T08:01:00.000Z",
            "stopped_at": "2026-11-26T08:05:15.000Z",
            "url": f"https://app.circleci.com/pipelines/github/acme/shop/{number}/workflows/{workflow_id}",
        },
        "pipeline": {
            "id": str(uuid.uuid4()),
            "number": number,
            "created_at": "2026-11-26T08:00:59.000Z",
            "trigger": {"type": "webhook"},
            "vcs": {
                "provider_name": "github",
                "origin_repository_url": "https://github.com/acme/shop",
                "target_repository_url": "https://github.com/acme/shop",
                "revision": "f9b5a4ad9c2b1e7d3c0a8e6f5d4c3b2a19081726",
                "branch": "main",
                "commit": {"subject": "Faster responses", "author": {"name": "Dev", "email": "dev@example.com"}},
            },
        },
        "job": {
            "id": str(uuid.uuid4()),
            "name": job,
            "started_at": "2026-11-26T08:04:00.000Z",
            "stopped_at": "2026-11-26T08:05:15.000Z",
            "status": status,
            "number": 1234,
        },
    }


def signed(payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "circleci-event-type": str(payload.get("type")),
        "circleci-signature": f"v1={sign(secret, body)},v2=ignored",
    }
    return body, headers


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def wait_until(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def serve_api_releases(prom: FakePrometheus) -> FakePrometheus:
    """Plenty of healthy traffic for shop/api's stable 2.0.0 and candidates 2.0.371-2.0.379: their
    releases pass unless a test programs otherwise (e.g. `prom.serve("2.0.371", 2000, errors=600)`)."""
    prom.serve("2.0.0", 18000)
    for number in range(371, 380):
        prom.serve(f"2.0.{number}", 2000)
    return prom
