"""Hook deliveries against a real Redis and a real local webhook receiver; the scheduler with a
real RQ queue and worker.

The receiver is a real HTTP server (tests/support/fakes.py) that records every request and
answers 200 / 500 / 429 + Retry-After / 400 as programmed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from app.config_file.loader import parse_config
from app.context import Context, set_context
from app.core.models import DeliveryAttempt, Release
from app.core.webhook_signing import verify as standard_verify
from app.release.intake import start_release
from app.store import PREFIX
from app.store import queues as rq_queues
from integrations.notify.webhook import USER_AGENT, verify
from tests.support.fakes import FakePrometheus, FakeRouter, Reply, WebhookReceiver, config_text
from tests.support.web import read_api
from workers.deliver import INTERRUPTED, deliver
from workers.scheduler import LEASE_SECONDS, QUEUE_NAME, enqueue_due
from workers.tick import tick

pytestmark = pytest.mark.integration

DUE = PREFIX + "due"
SECRET = "whsec-s3cr3t-value-for-tests"
SECRET_ENV = "SLUICE_TEST_HOOK_SECRET"


def hooks_yaml(url: str, max_attempts: int = 3) -> str:
    return f"""  - name: ci
    type: webhook
    on: [succeeded, failed]
    url: "{url}/notify?token=url-token-1234"
    secret_env: {SECRET_ENV}
    max_attempts: {max_attempts}
    timeout: 2s
    payload:
      text: "{{service}} {{target_version}} is {{state}}"
      step: "{{step}}"
  - name: audit
    type: webhook
    on: [started, step_passed, aborted]
    services: [admin]
    url: "{url}/audit"
"""


@pytest.fixture
def ctx(
    redis_url: str,
    prom: FakePrometheus,
    router: FakeRouter,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Context]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    prom.healthy("2.1.0", "2.0.0")  # the releases of api and admin pass unless a test says otherwise
    prom.healthy("5.1.0", "5.0.0")
    context = Context(
        config=parse_config(config_text(hooks_yaml(receiver.url))), redis_url=redis_url, prometheus_url=prom.url
    )
    context._routers["shop"] = router
    yield context
    set_context(None)
    context.prometheus.close()
    context.store.r.close()


def get(ctx: Context, rid: str) -> Release:
    rel = ctx.store.get(rid)
    assert rel is not None
    return rel


def finish(ctx: Context, rid: str, timeout: float = 5.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
    raise AssertionError("release did not finish")


def succeeded_release(ctx: Context) -> tuple[Release, str]:
    rid = start_release(ctx, "api", "2.1.0").release.id
    rel = finish(ctx, rid)
    assert rel.state == "succeeded"
    return rel, f"{rid}:succeeded:ci"


def hook_score(ctx: Context, delivery_id: str) -> float | None:
    score = ctx.store.r.zscore(DUE, "hook:" + delivery_id)
    return None if score is None else float(score)


def test_succeeded_release_delivers_a_signed_webhook(ctx: Context, receiver: WebhookReceiver) -> None:
    rel, did = succeeded_release(ctx)
    assert rel.hooks == [did]
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None
    assert delivery.state == "pending" and delivery.attempts == [] and delivery.event == "succeeded"
    assert hook_score(ctx, did) is not None
    assert receiver.requests == []  # planned, not sent, until the delivery job runs

    assert deliver(ctx, did).startswith("delivered")

    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req.method == "POST" and req.path == "/notify?token=url-token-1234"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"] == USER_AGENT
    assert req.headers["Sluice-Delivery"] == did
    assert req.headers["Sluice-Event"] == "succeeded"
    assert verify(SECRET, req.headers["Sluice-Signature"], req.body)
    assert not verify("another-secret", req.headers["Sluice-Signature"], req.body)
    assert not verify(SECRET, req.headers["Sluice-Signature"], req.body + b" ")
    # Standard Webhooks: what an off-the-shelf verifier checks; the id is the delivery's, stable across retries.
    h = {k.lower(): v for k, v in req.headers.items()}
    assert h["webhook-id"] == did
    standard_verify(SECRET, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], req.body, time.time())
    body = json.loads(req.body)
    assert body["event"] == "succeeded"
    assert body["release"]["release_id"] == rel.id and body["release"]["state"] == "succeeded"
    assert body["text"] == "api 2.1.0 is succeeded"
    assert body["step"] == 3  # a lone placeholder keeps the field's type
    assert body["url"] == f"/api/v1/releases/{rel.id}"

    delivery = ctx.store.get_delivery(did)
    assert delivery is not None
    assert delivery.state == "delivered" and len(delivery.attempts) == 1
    assert delivery.attempts[0].status == 200 and delivery.attempts[0].ok is True
    assert hook_score(ctx, did) is None
    assert "hook_delivered" in [e.type for e in ctx.store.events(rel.id)]
    # Delivered once: running the job again sends nothing.
    assert deliver(ctx, did) == "already delivered"
    assert len(receiver.requests) == 1


def test_failed_release_delivers_failed_hook(ctx: Context, prom: FakePrometheus, receiver: WebhookReceiver) -> None:
    prom.serve("2.1.0", 2000, errors=600)  # 30% 500s; stable none
    rid = start_release(ctx, "api", "2.1.0").release.id
    assert finish(ctx, rid).state == "failed"
    did = f"{rid}:failed:ci"
    assert get(ctx, rid).hooks == [did]
    assert deliver(ctx, did).startswith("delivered")
    body = json.loads(receiver.requests[0].body)
    assert body["event"] == "failed" and "errors" in body["release"]["reason"]
    assert receiver.requests[0].headers["Sluice-Event"] == "failed"


def test_started_and_step_passed_hooks_have_deterministic_ids(ctx: Context, receiver: WebhookReceiver) -> None:
    from app.release.control import control

    rid = start_release(ctx, "admin", "5.1.0").release.id
    tick(ctx, rid, 0)
    assert str(tick(ctx, rid, get(ctx, rid).seq)).startswith("pause")
    control(ctx, rid, "resume")
    rel = finish(ctx, rid)
    assert rel.state == "succeeded"
    assert rel.hooks == [f"{rid}:started:audit", f"{rid}:step_passed:0:audit", f"{rid}:succeeded:ci"]
    for did in rel.hooks:
        assert deliver(ctx, did).startswith("delivered")
    audit = [r for r in receiver.requests if r.path == "/audit"]
    assert [json.loads(r.body)["event"] for r in audit] == ["started", "step_passed"]
    assert [json.loads(r.body)["release"]["step"] for r in audit] == [1, 1]  # the step that passed
    assert [r.headers["Sluice-Delivery"] for r in audit] == rel.hooks[:2]
    assert all("Sluice-Signature" not in r.headers for r in audit)  # no secret_env: unsigned
    # The api service is not in the audit hook's `services`.
    other = start_release(ctx, "api", "2.1.0").release.id
    tick(ctx, other, 0)
    assert get(ctx, other).hooks == []


def test_server_error_then_success_records_two_attempts(ctx: Context, receiver: WebhookReceiver) -> None:
    _, did = succeeded_release(ctx)
    receiver.reply(Reply(500, body=b"upstream down"))

    before = time.time()
    out = deliver(ctx, did)
    assert out.startswith("retry"), out
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "pending"
    assert [a.status for a in delivery.attempts] == [500]
    assert delivery.attempts[0].response == "upstream down"
    score = hook_score(ctx, did)
    assert score is not None and before + 0.8 - 0.05 <= score <= time.time() + 1.2  # backoff(1): 1s +-20%
    assert score == pytest.approx(delivery.next_attempt_at)

    assert deliver(ctx, did).startswith("delivered")
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "delivered"
    assert [a.status for a in delivery.attempts] == [500, 200]
    assert hook_score(ctx, did) is None
    assert [r.headers["Sluice-Delivery"] for r in receiver.requests] == [did, did]


def test_429_retry_after_is_honoured(ctx: Context, receiver: WebhookReceiver) -> None:
    _, did = succeeded_release(ctx)
    receiver.reply(Reply(429, headers={"Retry-After": "1"}, body=b"slow down"))
    before = time.time()
    assert deliver(ctx, did).startswith("retry in 1.0s")
    score = hook_score(ctx, did)
    assert score is not None and before + 1.0 <= score <= time.time() + 1.0
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "pending" and delivery.attempts[0].status == 429


def test_400_fails_without_retry(ctx: Context, receiver: WebhookReceiver) -> None:
    rel, did = succeeded_release(ctx)
    receiver.reply(Reply(400, body=b"bad payload"))
    out = deliver(ctx, did)
    assert "400" in out and "not retried" in out
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "failed" and len(delivery.attempts) == 1
    assert hook_score(ctx, did) is None
    assert deliver(ctx, did) == "already failed"
    assert len(receiver.requests) == 1
    assert "hook_failed" in [e.type for e in ctx.store.events(rel.id)]


def test_gives_up_after_max_attempts(ctx: Context, receiver: WebhookReceiver) -> None:
    _, did = succeeded_release(ctx)
    receiver.default = Reply(503, body=b"unavailable")
    outs = [deliver(ctx, did) for _ in range(3)]
    assert outs[0].startswith("retry") and outs[1].startswith("retry")
    assert "gave up after 3 attempts" in outs[2]
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "failed" and len(delivery.attempts) == 3
    assert hook_score(ctx, did) is None


def test_unreachable_receiver_is_retried(ctx: Context, receiver: WebhookReceiver) -> None:
    _, did = succeeded_release(ctx)
    receiver.stop()
    out = deliver(ctx, did)
    assert out.startswith("retry"), out
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None
    attempt = delivery.attempts[0]
    assert attempt.status is None and "could not reach" in attempt.error
    assert hook_score(ctx, did) is not None


def test_missing_secret_fails_the_delivery_without_sending(
    ctx: Context, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, did = succeeded_release(ctx)
    monkeypatch.delenv(SECRET_ENV)
    out = deliver(ctx, did)
    assert SECRET_ENV in out
    assert receiver.requests == []
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "failed"


def test_secret_never_recorded_or_shown(ctx: Context, receiver: WebhookReceiver) -> None:
    rel, did = succeeded_release(ctx)
    # A careless receiver echoes the secret back in its error body.
    receiver.reply(Reply(500, body=f"bad signature, expected secret {SECRET}".encode()))
    deliver(ctx, did)
    deliver(ctx, did)
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "delivered"
    assert "[redacted]" in delivery.attempts[0].response

    # Nothing in Redis holds the secret.
    r = ctx.store.r
    for key in r.scan_iter(PREFIX + "*"):
        kind = r.type(key).decode()
        if kind == "string":
            values = [r.get(key) or b""]
        elif kind == "list":
            values = r.lrange(key, 0, -1)
        elif kind == "zset":
            values = [m for m in r.zrange(key, 0, -1)]
        else:
            values = []
        for v in values:
            assert SECRET.encode() not in v, key

    set_context(ctx)
    resp = read_api(f"/api/v1/releases/{rel.id}")
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert SECRET not in text
    assert "url-token-1234" not in text  # the hook URL's query is not shown either
    data = resp.get_json()
    shown = data["hook_deliveries"][0]
    assert shown["id"] == did and shown["state"] == "delivered"
    assert shown["target"] == f"{receiver.url}/notify"
    assert [a["status"] for a in shown["attempts"]] == [500, 200]


# --- the scheduler, a real RQ queue and worker --------------------------------------------------------


def test_scheduler_runs_ticks_and_deliveries_end_to_end(ctx: Context, receiver: WebhookReceiver) -> None:
    set_context(ctx)  # what the RQ jobs (workers.tick.run_tick, workers.deliver.run_delivery) use
    receiver.reply(Reply(500, body=b"once"))
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    rid = start_release(ctx, "api", "2.1.0").release.id
    did = f"{rid}:succeeded:ci"

    enqueued = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        enqueued += enqueue_due(ctx.store, queue)
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
        delivery = ctx.store.get_delivery(did)
        if delivery is not None and delivery.state != "pending":
            break
        time.sleep(0.1)

    rel = get(ctx, rid)
    assert rel.state == "succeeded", rel
    assert ctx.store.stable_version("shop", "api") == "2.1.0"
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None and delivery.state == "delivered"
    assert [a.status for a in delivery.attempts] == [500, 200]
    assert len(receiver.requests) == 2
    # start, advance, advance, promote = 4 ticks; 2 delivery attempts.
    assert enqueued >= 6
    assert ctx.store.due_count() == 0
    assert queue.count == 0
    assert len(queue.failed_job_registry) == 0


def test_enqueue_due_only_takes_due_items_and_leases_them(ctx: Context) -> None:
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    now = time.time()
    ctx.store.schedule("tick:r-a:0", now - 1)
    ctx.store.schedule("hook:r-a:succeeded:ci", now - 1)
    ctx.store.schedule("tick:r-b:0", now + 60)
    ctx.store.schedule("bogus", now - 1)
    assert enqueue_due(ctx.store, queue, now=now) == 3
    jobs = {(j.func_name, repr(j.args)) for j in queue.get_jobs()}
    assert jobs == {  # JSON on the wire (app/store/queues.py): tuples come back as lists
        ("workers.tick.run_ticks", repr([[["r-a", 0]]])),
        ("workers.deliver.run_delivery", repr(["r-a:succeeded:ci"])),
    }
    # Leased, not removed: a worker that dies mid-job leaves the item to come due again.
    assert float(ctx.store.r.zscore(DUE, "tick:r-a:0") or 0) == pytest.approx(now + LEASE_SECONDS)
    assert ctx.store.r.zscore(DUE, "bogus") is None
    assert enqueue_due(ctx.store, queue, now=now) == 0


def test_a_killed_holders_delivery_is_retried_within_the_lease(
    ctx: Context, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker SIGKILLed mid-call leaves its delivery locked and its attempt recorded as
    interrupted. The lock is a lease its heartbeat no longer renews, so the delivery is sent again
    (same id) once the lease runs out, not after the RQ job's 60 s timeout; and the attempt is
    recorded once, with the interrupted one before it."""
    import workers.deliver as deliver_module

    assert deliver_module.LEASE_TTL <= 10.0
    monkeypatch.setattr(deliver_module, "LEASE_TTL", 2.0)
    set_context(ctx)
    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    _, did = succeeded_release(ctx)
    delivery = ctx.store.get_delivery(did)
    assert delivery is not None
    # What the dead holder left: its lease (renewed until the kill, now), its attempt recorded
    # as interrupted, and the delivery due again (a long call: already due).
    dead = ctx.store.lock("delivery:" + did, ttl=deliver_module.LEASE_TTL)
    assert dead.__enter__()
    killed = time.monotonic()
    delivery.attempts.append(DeliveryAttempt(at=time.time() - 5, error=INTERRUPTED))
    ctx.store.save_delivery(delivery, time.time() - 1)

    while (delivery := ctx.store.get_delivery(did)) is not None and delivery.state == "pending":
        # The scheduler claims it (pushing it LEASE_SECONDS ahead); the job finds it busy.
        assert time.monotonic() - killed < deliver_module.LEASE_TTL + 3.0, "not retried within the lease"
        enqueue_due(ctx.store, queue)
        rq_queues.worker([queue], ctx.store.r).work(burst=True, logging_level="WARNING")
        time.sleep(0.1)

    assert delivery is not None and delivery.state == "delivered"
    assert [(a.status, a.error) for a in delivery.attempts] == [(None, INTERRUPTED), (200, None)]
    assert [r.headers["Sluice-Delivery"] for r in receiver.requests] == [did]
    assert hook_score(ctx, did) is None


def test_a_backed_up_queue_takes_no_more_until_it_drains(ctx: Context) -> None:
    """Backpressure: while the queue holds MAX_QUEUED_JOBS jobs, nothing more is claimed, so an item
    never waits in the queue past its claim and gets enqueued a second time (under a backlog, those
    duplicates grew the queue further: 267 waiting jobs in a 200-release run of chaos.swarm)."""
    from workers.scheduler import MAX_QUEUED_JOBS

    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    now = time.time()
    for i in range(MAX_QUEUED_JOBS):
        ctx.store.schedule(f"hook:r-{i}:succeeded:ci", now - 1)
    assert enqueue_due(ctx.store, queue, now=now) == MAX_QUEUED_JOBS
    ctx.store.schedule("tick:r-late:0", now - 1)
    later = now + LEASE_SECONDS + 1  # every claim above has run out; the jobs still wait
    assert enqueue_due(ctx.store, queue, now=later) == 0
    assert queue.count == MAX_QUEUED_JOBS  # nothing enqueued twice, nothing new
    assert float(ctx.store.r.zscore(DUE, "tick:r-late:0") or 0) == pytest.approx(now - 1)  # still due, unclaimed
    queue.empty()
    assert enqueue_due(ctx.store, queue, now=later) == MAX_QUEUED_JOBS + 1  # drained: all of it, once more


def test_a_queue_with_little_room_is_given_no_more_than_fits(ctx: Context) -> None:
    """Backpressure by the room left, not only at the full mark: with room for one job, one batch of
    ticks is claimed and the rest stay due, unclaimed. Claiming 500 at once put 31 jobs behind a queue
    of 63: under a backlog their claims ran out while they waited, each tick was enqueued again and
    ran stale, and 10,000 releases on 2 workers did 36 ticks/s at 335 Redis commands a tick."""
    from workers.scheduler import MAX_QUEUED_JOBS, TICK_BATCH

    queue = rq_queues.queue(QUEUE_NAME, ctx.store.r)
    now = time.time()
    for i in range(MAX_QUEUED_JOBS - 1):
        ctx.store.schedule(f"hook:r-{i}:succeeded:ci", now - 2)
    assert enqueue_due(ctx.store, queue, now=now) == MAX_QUEUED_JOBS - 1
    for i in range(5 * TICK_BATCH):
        ctx.store.schedule(f"tick:r-{i}:0", now - 1)
    assert enqueue_due(ctx.store, queue, now=now) == TICK_BATCH
    assert queue.count == MAX_QUEUED_JOBS
    unclaimed = ctx.store.r.zrangebyscore(DUE, "-inf", now)
    assert len(unclaimed) == 4 * TICK_BATCH  # still due at their own time, for when the queue drains
