"""The CircleCI, Slack and PagerDuty hooks against local servers that speak those APIs: what is
sent, pagination, 429 + Retry-After, 5xx retries, 4xx not retried with the API's message, and no
secret in anything recorded or shown."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid

import pytest

from app.config_file.loader import ConfigError, parse_config
from app.context import Context
from app.core.models import CIContext, Delivery, Release
from app.release.intake import start_release
from app.store import PREFIX
from tests.support.ci import CIRCLE_TOKEN, PD_KEY, PUBLIC_URL, SLUG, ci_config, get
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty, FakeSlack, Fault
from tests.support.fakes import BASE_CONFIG, FakePrometheus, FakeRouter
from tests.support.web import read_api
from workers.deliver import INTERRUPTED, deliver
from workers.tick import tick

pytestmark = pytest.mark.integration


def finish(ctx: Context, rid: str, timeout: float = 8.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick(ctx, rid, get(ctx, rid).seq)
        rel = get(ctx, rid)
        if rel.terminal:
            return rel
    raise AssertionError("release did not finish")


def release(ctx: Context, version: str = "2.0.371", workflow_id: str | None = None) -> Release:
    ci = CIContext(provider="circleci", project_slug=SLUG, workflow_id=workflow_id or str(uuid.uuid4()))
    return finish(ctx, start_release(ctx, "api", version, ci=ci).release.id)


def make_ctx(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, extra_hooks: str
) -> Context:
    """A context whose configuration has more hooks than the `ctx` fixture's."""
    config = parse_config(ci_config(circle, pagerduty, extra_hooks))
    ctx = Context(config=config, redis_url=redis_url, prometheus_url=prom.url)
    ctx._routers["shop"] = FakeRouter()
    return ctx


def delivery(ctx: Context, did: str) -> Delivery:
    d = ctx.store.get_delivery(did)
    assert d is not None
    return d


# --- CircleCI: approve ------------------------------------------------------------------------------


def test_approve_pages_through_jobs_and_approves_the_held_one(ctx: Context, circle: FakeCircleCI) -> None:
    wf = str(uuid.uuid4())
    circle.add_workflow(
        wf,
        [("build", "build", "success"), ("deploy", "build", "success"), ("test", "build", "success"),
         ("released-by-sluice", "approval", "on_hold"), ("publish", "build", "blocked")],
    )  # fmt: skip
    rel = release(ctx, workflow_id=wf)
    assert rel.state == "succeeded"
    did = f"{rel.id}:succeeded:approve"
    assert deliver(ctx, did).startswith("delivered")
    assert circle.approved == [(wf, "released-by-sluice")]
    gets = [r for r in circle.requests if r.method == "GET"]
    # First whose workflow it is (GET /workflow/{id}), then the job pages.
    assert gets[0].path == f"/api/v2/workflow/{wf}"
    assert [r.path.partition("?")[2] for r in gets[1:]] == ["", "page-token=tok2", "page-token=tok4"]
    assert all(r.headers["Circle-Token"] == CIRCLE_TOKEN for r in circle.requests)
    d = delivery(ctx, did)
    assert d.state == "delivered" and d.attempts[0].status == 202
    assert d.target == f"{circle.base}/workflow/{wf}/approve"


def test_nothing_on_hold_fails_without_retry(ctx: Context, circle: FakeCircleCI) -> None:
    wf = str(uuid.uuid4())
    circle.add_workflow(wf, [("deploy", "build", "success"), ("released-by-sluice", "approval", "canceled")])
    rel = release(ctx, workflow_id=wf)
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert "no approval job is on hold" in out and "not retried" in out, out
    d = delivery(ctx, f"{rel.id}:succeeded:approve")
    assert d.state == "failed" and len(d.attempts) == 1
    assert "released-by-sluice (approval, canceled)" in d.attempts[0].error


def test_an_approval_that_already_landed_is_delivered(ctx: Context, circle: FakeCircleCI) -> None:
    """An earlier attempt's approve reached CircleCI but its answer was lost (timeout, worker killed):
    the retry finds the job approved, which is what the hook wanted, not a failure."""
    wf = str(uuid.uuid4())
    circle.add_workflow(wf, [("deploy", "build", "success"), ("released-by-sluice", "approval", "success")])
    rel = release(ctx, workflow_id=wf)
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert out.startswith("delivered"), out
    assert delivery(ctx, f"{rel.id}:succeeded:approve").attempts[0].response == "already approved: released-by-sluice"
    assert not [r for r in circle.requests if r.method == "POST"]


def test_approve_honours_429_retry_after_and_retries_5xx(ctx: Context, circle: FakeCircleCI) -> None:
    wf = str(uuid.uuid4())
    circle.add_workflow(wf, [("released-by-sluice", "approval", "on_hold")])
    rel = release(ctx, workflow_id=wf)
    did = f"{rel.id}:succeeded:approve"
    circle.fail_next(Fault(429, {"message": "Rate limit exceeded"}, {"Retry-After": "7"}))
    before = time.time()
    assert deliver(ctx, did).startswith("retry in 7.0s")
    score = ctx.store.r.zscore(PREFIX + "due", "hook:" + did)
    assert score is not None and before + 7 <= score <= time.time() + 7
    circle.fail_next(Fault(502, b"<html>Bad gateway</html>"))
    assert deliver(ctx, did).startswith("retry")
    assert deliver(ctx, did).startswith("delivered")
    assert [a.status for a in delivery(ctx, did).attempts] == [429, 502, 202]
    assert circle.approved == [(wf, "released-by-sluice")]


def test_approve_4xx_shows_circlecis_message_and_is_not_retried(ctx: Context, circle: FakeCircleCI) -> None:
    rel = release(ctx, workflow_id=str(uuid.uuid4()))  # CircleCI does not know this workflow
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert out == "approve answered 404: Workflow not found; not retried"


def test_missing_workflow_id_and_missing_token_fail_clearly(
    ctx: Context, circle: FakeCircleCI, prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom.serve("2.0.5")
    prom.serve("2.0.6")
    rid = start_release(ctx, "api", "2.0.5").release.id  # announced without CI context
    finish(ctx, rid)
    assert "no CircleCI workflow id" in deliver(ctx, f"{rid}:succeeded:approve")
    # A pipeline runs in the configured project, which needs no CI context from the announcement.
    assert deliver(ctx, f"{rid}:succeeded:cleanup-old").startswith("delivered")
    assert [p["slug"] for p in circle.pipelines] == [SLUG]
    sent = len(circle.requests)
    monkeypatch.delenv("CIRCLECI_TOKEN")
    rel = release(ctx, version="2.0.6")
    assert "CIRCLECI_TOKEN" in deliver(ctx, f"{rel.id}:succeeded:approve")
    assert len(circle.requests) == sent


# --- CircleCI: trigger a pipeline, cancel -------------------------------------------------------------


def test_trigger_pipeline_sends_templated_parameters(ctx: Context, circle: FakeCircleCI) -> None:
    rel = release(ctx)
    assert deliver(ctx, f"{rel.id}:succeeded:cleanup-old").startswith("delivered")
    assert circle.pipelines == [
        {"slug": SLUG, "run": False, "body": {"branch": "main", "parameters": {"cleanup": True, "version": "2.0.0"}}}
    ]


def test_undeclared_parameter_is_a_400_with_circlecis_message(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    extra = """  - name: bogus
    type: circleci_trigger_pipeline
    on: [succeeded]
    project_slug: gh/acme/deployer
    tag: "v{target_version}"
    parameters: {nope: "{service}"}
"""
    ctx = make_ctx(redis_url, prom, circle, pagerduty, extra)
    rel = release(ctx)
    out = deliver(ctx, f"{rel.id}:succeeded:bogus")
    assert out == "bogus answered 400: Unexpected argument(s): nope; not retried"
    sent = circle.bodies(r"/pipeline$")[-1]
    assert sent == {"tag": "v2.0.371", "parameters": {"nope": "api"}}
    assert circle.requests[-1].path == "/api/v2/project/gh/acme/deployer/pipeline"
    ctx.store.r.close()


def _run_ctx(redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty) -> Context:
    extra = """  - name: run
    type: circleci_trigger_pipeline
    on: [succeeded]
    definition_id: 2a7e9f0c-5f6a-4b1e-9e44-0c6f0a1b2c3d
    branch: release
    parameters: {cleanup: true, version: "{source_version}"}
"""
    ctx = make_ctx(redis_url, prom, circle, pagerduty, extra)
    return ctx


def test_pipeline_run_endpoint_with_definition_id(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    ctx = _run_ctx(redis_url, prom, circle, pagerduty)
    rel = release(ctx)
    assert deliver(ctx, f"{rel.id}:succeeded:run").startswith("delivered")
    assert circle.pipelines[-1]["run"] is True
    assert circle.pipelines[-1]["body"] == {
        "definition_id": "2a7e9f0c-5f6a-4b1e-9e44-0c6f0a1b2c3d",
        "config": {"branch": "release"},
        "checkout": {"branch": "release"},
        "parameters": {"cleanup": True, "version": "2.0.0"},
    }
    assert circle.requests[-1].path == "/api/v2/project/gh/acme/shop/pipeline/run"
    ctx.store.r.close()


def test_a_200_with_a_message_is_not_a_triggered_pipeline(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    ctx = _run_ctx(redis_url, prom, circle, pagerduty)
    circle.run_answers_message = "No workflow was run: all filters excluded this branch"
    rel = release(ctx)
    out = deliver(ctx, f"{rel.id}:succeeded:run")
    assert "created no pipeline: No workflow was run" in out and "not retried" in out, out
    d = delivery(ctx, f"{rel.id}:succeeded:run")
    assert d.state == "failed" and d.attempts[0].status == 200 and d.attempts[0].ok is False
    ctx.store.r.close()


def test_parameter_limits_are_enforced() -> None:
    from app.config_file.loader import ConfigError
    from integrations.circleci.api import check_parameters

    assert check_parameters({"a": "x" * 512}) is None
    assert "at most 512" in (check_parameters({"a": "x" * 513}) or "")
    assert "longer than 128" in (check_parameters({"k" * 129: 1}) or "")
    assert "at most 100" in (check_parameters({f"p{i}": i for i in range(101)}) or "")
    hook = "  - {name: t, type: circleci_trigger_pipeline, on: [failed], parameters: {%s}}\n"
    too_many = ", ".join(f"p{i}: {i}" for i in range(101))
    for params, message in (
        (too_many, "at most 100"),
        ("k" * 129 + ": 1", "1-128 characters"),
        ("v: " + "x" * 513, "at most 512"),
        ('v: "{nope}"', "unknown field(s) {nope}"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")):
            parse_config(BASE_CONFIG + "hooks:\n" + hook % params)


def test_cancel_workflow(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(redis_url, prom, circle, pagerduty, "  - {name: cancel, type: circleci_cancel_workflow}\n")
    prom.serve("2.0.371", 2000, errors=1000)  # 50% 500s
    wf = str(uuid.uuid4())
    circle.add_workflow(wf, [("released-by-sluice", "approval", "on_hold")])
    rel = release(ctx, workflow_id=wf)
    assert rel.state == "failed"
    assert deliver(ctx, f"{rel.id}:failed:cancel").startswith("delivered")
    assert circle.cancelled == [wf]
    ctx.store.r.close()


# --- Slack --------------------------------------------------------------------------------------------


def test_slack_message_has_outcome_checks_and_link(ctx: Context, slack: FakeSlack, prom: FakePrometheus) -> None:
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    rel = release(ctx)
    assert rel.state == "failed"
    assert deliver(ctx, f"{rel.id}:failed:slack").startswith("delivered")
    msg = slack.messages[0]
    assert "api 2.0.371 failed" in msg["text"]
    text = str(msg["blocks"])
    assert "*errors* 0.3" in text and "FAIL" in text
    assert f"{PUBLIC_URL}/api/v1/releases/{rel.id}" in text
    assert slack.requests[0].headers["Content-Type"] == "application/json"


def test_slack_invalid_payload_is_not_retried_and_429_is(ctx: Context, slack: FakeSlack) -> None:
    rel = release(ctx)
    did = f"{rel.id}:succeeded:slack"
    slack.fail_next(Fault(429, b"rate_limited", {"Retry-After": "2"}))
    assert deliver(ctx, did).startswith("retry in 2.0s")
    slack.fail_next(Fault(400, b"invalid_payload"))
    assert deliver(ctx, did) == "slack answered 400: invalid_payload; not retried"
    d = delivery(ctx, did)
    assert [a.status for a in d.attempts] == [429, 400]
    assert d.target == "slack incoming webhook ($SLACK_WEBHOOK_URL)"


def test_slack_url_is_never_recorded_or_shown(ctx: Context, slack: FakeSlack) -> None:
    rel = release(ctx)
    did = f"{rel.id}:succeeded:slack"
    slack.fail_next(Fault(500, f"upstream error for {slack.webhook_url}".encode()))
    deliver(ctx, did)
    deliver(ctx, did)
    secret = slack.SECRET_PATH.rsplit("/", 1)[1]
    for key in ctx.store.r.scan_iter(PREFIX + "*"):
        if ctx.store.r.type(key) == b"string":
            assert secret.encode() not in (ctx.store.r.get(key) or b""), key
    shown = read_api(f"/api/v1/releases/{rel.id}").get_data(as_text=True)
    assert secret not in shown and "[redacted]" in shown


# --- PagerDuty ------------------------------------------------------------------------------------------


def test_pagerduty_triggers_on_failure_and_resolves_on_a_later_success(
    ctx: Context, pagerduty: FakePagerDuty, prom: FakePrometheus
) -> None:
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    bad = release(ctx)
    assert deliver(ctx, f"{bad.id}:failed:pager").startswith("delivered")
    good = release(ctx, version="2.0.372")
    assert good.state == "succeeded"
    assert deliver(ctx, f"{good.id}:succeeded:pager").startswith("delivered")
    trigger, resolve = pagerduty.events
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == PD_KEY
    assert trigger["dedup_key"] == resolve["dedup_key"] == "sluice/shop/api"
    assert resolve == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "sluice/shop/api"}
    p = trigger["payload"]
    assert p["severity"] == "error" and p["component"] == "api" and p["group"] == "shop"
    assert "api 2.0.371 failed" in p["summary"] and "errors" in p["summary"]
    assert trigger["links"][0]["href"] == f"{PUBLIC_URL}/api/v1/releases/{bad.id}"
    assert pagerduty.requests[0].path == "/v2/enqueue"


def test_pagerduty_400_not_retried_429_and_5xx_retried(
    ctx: Context, pagerduty: FakePagerDuty, prom: FakePrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom.serve("2.0.371", 2000, errors=600)  # 30% 500s
    rel = release(ctx)
    did = f"{rel.id}:failed:pager"
    pagerduty.fail_next(Fault(429, {"status": "throttled", "message": "Requests for this service are throttled"}))
    assert deliver(ctx, did).startswith("retry")
    pagerduty.fail_next(Fault(503, b"Service Unavailable"))
    assert deliver(ctx, did).startswith("retry")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "too-short-key")
    out = deliver(ctx, did)
    assert out.startswith("pager answered 400: Event object is invalid") and out.endswith("not retried"), out
    assert [a.status for a in delivery(ctx, did).attempts] == [429, 503, 400]
    assert "too-short-key" not in str(delivery(ctx, did))


# --- a worker killed mid-call ------------------------------------------------------------------------


def _killed_mid_call(ctx: Context, server: FakeSlack, did: str) -> None:
    """Run the delivery in a forked worker and SIGKILL it while the call waits for its answer."""
    sent = len(server.requests)
    held = server.hold_answers()
    worker = multiprocessing.get_context("fork").Process(target=deliver, args=(ctx, did))
    worker.start()
    deadline = time.monotonic() + 5
    while len(server.requests) == sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.requests) == sent + 1, "the worker never made its call"
    os.kill(worker.pid or 0, signal.SIGKILL)
    worker.join()
    held.set()
    server._held = None
    ctx.store.r.delete(PREFIX + "lock:delivery:" + did)  # what the lock's TTL does


def test_a_worker_killed_mid_call_is_recorded_and_counts_towards_max_attempts(ctx: Context, slack: FakeSlack) -> None:
    rel = release(ctx)
    did = f"{rel.id}:succeeded:slack"
    _killed_mid_call(ctx, slack, did)
    d = delivery(ctx, did)
    assert d.state == "pending" and [a.error for a in d.attempts] == [INTERRUPTED]
    assert "interrupted" in read_api(f"/api/v1/releases/{rel.id}").get_data(as_text=True)
    assert deliver(ctx, did).startswith("delivered")
    assert [a.status for a in delivery(ctx, did).attempts] == [None, 200]
    # A delivery that kills its worker every time (max_attempts: 3) is given up, not retried forever.
    rel = release(ctx, version="2.0.372")
    did = f"{rel.id}:succeeded:slack"
    for _ in range(3):
        _killed_mid_call(ctx, slack, did)
    sent = len(slack.requests)
    assert deliver(ctx, did) == "slack: gave up after 3 attempts"
    assert len(slack.requests) == sent and delivery(ctx, did).state == "failed"


def test_pagerduty_never_pages_for_a_release_that_merely_started(
    redis_url: str, prom: FakePrometheus, circle: FakeCircleCI, pagerduty: FakePagerDuty, env: pytest.MonkeyPatch
) -> None:
    extra = f"  - {{name: pd-all, type: pagerduty, api_url: {pagerduty.url}, on: [started, succeeded]}}\n"
    with pytest.raises(ConfigError) as info:
        make_ctx(redis_url, prom, circle, pagerduty, extra)
    [(where, message)] = info.value.problems
    assert "hooks.5.on" in where
    assert "PagerDuty acts on failed, aborted and succeeded only; remove started" in message
    assert pagerduty.events == []


def test_a_job_list_that_never_ends_is_reported_as_such(ctx: Context, circle: FakeCircleCI) -> None:
    wf = str(uuid.uuid4())
    circle.add_workflow(wf, [(f"build-{i}", "build", "success") for i in range(60)])  # 30 pages of 2
    rel = release(ctx, workflow_id=wf)
    out = deliver(ctx, f"{rel.id}:succeeded:approve")
    assert "did not end after 20 pages" in out, out
    assert len([r for r in circle.requests if r.method == "GET"]) == 1 + 20  # whose workflow, then 20 pages
