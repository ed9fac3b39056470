"""Receiver answers are redacted before they are cut short for the record, so a secret that crosses
the cut (300 characters for the answer, 200 for the error) is blanked whole, in Redis and in the
API: the CircleCI token, the PagerDuty routing key and the Slack webhook URL's secret. And a
webhook URL's query (`?token=...`) is never stored."""

from __future__ import annotations

import time
import uuid

import pytest

from app.context import Context
from app.core.models import CIContext
from app.release.hooks import plan_deliveries
from app.release.intake import start_release
from app.store import PREFIX
from tests.support.ci import CIRCLE_TOKEN, PD_KEY, SLUG
from tests.support.ci_fakes import FakeSlack, Fault
from tests.support.web import read_api
from workers.deliver import deliver

pytestmark = pytest.mark.integration
SLACK_SECRET = FakeSlack.SECRET_PATH.rsplit("/", 1)[1]


def failed_deliveries(ctx: Context) -> str:
    """A release with its `failed` deliveries planned and stored (as the engine records them)."""
    ci = CIContext(provider="circleci", project_slug=SLUG, workflow_id=str(uuid.uuid4()), pipeline_number=371)
    rel = start_release(ctx, "api", "2.0.371", ci=ci).release
    planned = plan_deliveries(ctx.config, rel, "failed", time.time())
    rel.hooks = [*rel.hooks, *(d.id for d in planned)]
    ctx.store.commit(rel, deliveries=planned)
    return rel.id


def stored_text(ctx: Context) -> bytes:
    r = ctx.store.r
    chunks = []
    for key in r.scan_iter(PREFIX + "*"):
        kind = r.type(key)
        if kind == b"string":
            chunks.append(r.get(key) or b"")
        elif kind == b"list":
            chunks += r.lrange(key, 0, -1)
        elif kind == b"hash":
            chunks += [k + b"=" + v for k, v in r.hgetall(key).items()]
        elif kind == b"zset":
            chunks += r.zrange(key, 0, -1)
    return b"\n".join(chunks)


@pytest.mark.parametrize(
    ("hook", "fake", "secret"),
    [("cleanup-failed", "circle", CIRCLE_TOKEN), ("pager", "pagerduty", PD_KEY), ("slack", "slack", SLACK_SECRET)],
)
def test_a_secret_across_the_cut_is_redacted_whole(
    ctx: Context, request: pytest.FixtureRequest, hook: str, fake: str, secret: str
) -> None:
    rid = failed_deliveries(ctx)
    did = f"{rid}:failed:{hook}"
    server = request.getfixturevalue(fake)
    # The secret starts 10 characters before each cut: 300 for the answer, 200 for the API's message.
    server.fail_next(
        Fault(500, "x" * 290 + secret + " and more"),
        Fault(400, {"message": "y" * 190 + secret + " and more"}),
    )
    deliver(ctx, did)
    deliver(ctx, did)
    recorded = ctx.store.get_delivery(did)
    assert recorded is not None and [a.status for a in recorded.attempts] == [500, 400]
    first, second = recorded.attempts
    assert first.response is not None and len(first.response) <= 300 and first.response.startswith("x" * 290)
    assert second.error is not None and len(second.error) <= 200 and second.error.startswith("y" * 190)

    prefix = secret[:10]  # what a cut before redaction used to leave
    for text in (first.response, second.error, second.response or ""):
        assert prefix not in text, text[-40:]
    assert prefix.encode() not in stored_text(ctx)
    shown = read_api(f"/api/v1/releases/{rid}").get_data(as_text=True)
    assert prefix not in shown and "[red" in shown


def test_a_webhook_url_query_is_never_stored(ctx: Context, circle, pagerduty, redis_url, monkeypatch) -> None:
    from app.config_file.loader import parse_config
    from tests.support.ci import ci_config
    from tests.support.fakes import WebhookReceiver

    receiver = WebhookReceiver().start()
    try:
        url = receiver.url + "?token=url-query-secret-7788&team=a"
        extra = f"  - {{name: hooked, type: webhook, on: [failed], url: '{url}'}}\n"
        ctx.config = parse_config(ci_config(circle, pagerduty, extra))
        rid = failed_deliveries(ctx)
        did = f"{rid}:failed:hooked"
        assert deliver(ctx, did).startswith("delivered")
        assert "url-query-secret-7788" in receiver.requests[-1].path  # sent to the URL as configured
        assert b"url-query-secret-7788" not in stored_text(ctx)
        assert ctx.store.get_delivery(did).target == receiver.url.split("?")[0]  # type: ignore[union-attr]
        assert "url-query-secret-7788" not in read_api(f"/api/v1/releases/{rid}").get_data(as_text=True)
    finally:
        receiver.stop()
