"""Instant rollback and known-bad versions end to end, as `make demo` runs Sluice: real Redis, HAProxy,
Prometheus, the demo service's versions under gunicorn, Sluice's web process and worker, and the
`sluice` CLI as a person would type it.

What a person would check: HAProxy's weights read back from its runtime API, which version the
load generator's real requests reach, the rollback's release record, the signed `rollback` hook
received by CI's stand-in, and the 409s (nothing to roll back to, a release running, a CI retry of
a failed or rolled-back version) with `force` getting past them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.cli.client import ApiClientError
from app.cli.demo.run import BAD, DEMO_VERSIONS, GOOD, SERVICE, STABLE, DemoStack
from integrations.haproxy.runtime import RuntimeClient
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
EXTRA = "1.0.373"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    versions = {**DEMO_VERSIONS, EXTRA: DEMO_VERSIONS[GOOD]}
    stack = DemoStack(tmp_path_factory.mktemp("rollback"), versions=versions, interval="1s", step="4s", last_step="3s")
    yield from running(stack)


def sluice(stack: DemoStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_URL": stack.api_url, "SLUICE_API_TOKEN": stack.token, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], env=env, capture_output=True, text=True, timeout=200
    )


def release_to_the_end(stack: DemoStack, version: str) -> dict:
    client = stack.client()
    answer = client.deploy(SERVICE, version, application="bluesky")
    sluice(stack, "watch", answer["release"], "--interval", "0.5", "--timeout", "180")
    return client.release(answer["release"])


def haproxy_weights(stack: DemoStack) -> dict[str, int]:
    return {name: info["weight"] for name, info in RuntimeClient(stack.haproxy_socket).servers(SERVICE).items()}


def hooks_received(stack: DemoStack, release_id: str, timeout: float = 15.0) -> list[tuple[str, bool]]:
    """(event, signature verified) of the hooks CI's stand-in received for a release, once there are any."""
    assert stack.receiver is not None
    deadline = time.time() + timeout
    got: list[tuple[str, bool]] = []
    while time.time() < deadline and not got:
        got = [
            (r["event"], r["verified"])
            for r in stack.receiver.received
            if r["payload"]["release"]["release_id"] == release_id
        ]
        time.sleep(0.2)
    return got


def test_rollback_after_a_promotion_puts_all_traffic_back_on_the_previous_version(stack):
    demo, load = stack
    client = demo.client()
    promoted = release_to_the_end(demo, GOOD)
    assert promoted["state"] == "succeeded", promoted["reason"]
    assert haproxy_weights(demo)[GOOD] == 100

    result = sluice(demo, "rollback", SERVICE, "--by", "alice", "--reason", "checkout is broken")
    rolled_back_at = time.time()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout

    # HAProxy's weights, read back from its runtime API, and the real requests that follow them.
    weights = haproxy_weights(demo)
    assert weights[STABLE] == 100 and weights[GOOD] == 0, weights
    time.sleep(2)
    after = load.between(rolled_back_at + 0.3, time.time())
    assert after.get(GOOD, 0) == 0 and after.get(STABLE, 0) > 20, after

    # The record: a release of its own, one step at 100% on the previous version.
    rollback = client.releases(service=SERVICE)["releases"][0]
    assert (rollback["trigger"], rollback["state"], rollback["actor"]) == (
        "rollback",
        "succeeded",
        "api:alice",
    )  # the shared token: the typed name after its label
    assert (rollback["source_version"], rollback["target_version"]) == (GOOD, STABLE)
    detail = client.release(rollback["id"])
    assert "checkout is broken" in detail["reason"]
    assert [e["data"]["weights"][STABLE] for e in detail["events"] if e["type"] == "weights_set"] == [100]
    assert detail["evaluations"] == []  # no judging wait
    services = client._request("GET", "/api/v1/applications")["applications"][0]["services"]
    assert services[0]["stable_version"] == STABLE

    # CI's stand-in got one signed `rollback` hook (and no `started`).
    assert hooks_received(demo, rollback["id"]) == [("rollback", True)]

    # The version taken out is known-bad: listed, and a CI retry of it is refused.
    listing = sluice(demo, "known-bad", SERVICE)
    assert listing.returncode == 0 and GOOD in listing.stdout and "rolled back by api:alice" in listing.stdout
    with pytest.raises(ApiClientError) as refused:
        client.deploy(SERVICE, GOOD, application="bluesky")
    assert refused.value.status == 409 and "1.0.371 rolled back by api:alice" in str(refused.value)

    # Nothing left to roll back to: the previous version would be the known-bad one.
    again = sluice(demo, "rollback", SERVICE)
    assert again.returncode == 1 and "nothing to roll back to" in again.stderr + again.stdout
    assert haproxy_weights(demo)[STABLE] == 100


def test_a_ci_retry_of_a_failed_version_is_refused_then_forced(stack):
    demo, _load = stack
    client = demo.client()
    failed = release_to_the_end(demo, BAD)
    assert failed["state"] == "failed" and failed["source_version"] == STABLE
    assert haproxy_weights(demo)[BAD] == 0

    with pytest.raises(ApiClientError) as refused:
        client.deploy(SERVICE, BAD, application="bluesky")  # the CI retry
    message = str(refused.value)
    assert refused.value.status == 409
    assert message.startswith("409: 1.0.372 failed on errors-vs-stable") and "at step 1, 20" in message, message
    assert message.endswith("send force: true to release it again")

    forced = client.deploy(SERVICE, BAD, application="bluesky", force=True, by="bob", reason="retry after fix")
    assert forced["status"] == "started" and forced["release"] != failed["id"]
    record = client.release(forced["release"])
    assert "forced by api:bob (retry after fix)" in record["events"][0]["message"]
    client.steer(forced["release"], "abort", reason="test over")  # do not let it run into the next test
    assert haproxy_weights(demo)[BAD] == 0


def test_rollback_is_refused_while_a_release_runs_or_when_the_previous_version_is_down(stack):
    demo, _load = stack
    client = demo.client()
    promoted = release_to_the_end(demo, EXTRA)
    assert promoted["state"] == "succeeded", promoted["reason"]
    previous = promoted["source_version"]

    # A release in flight: refused, unless forced.
    running = client.deploy(SERVICE, BAD, application="bluesky", force=True, by="test")
    assert running["status"] == "started"
    with pytest.raises(ApiClientError) as busy:
        client.rollback(SERVICE)
    assert busy.value.status == 409 and f"release {running['release']} (1.0.373 -> 1.0.372) is" in str(busy.value)
    assert "abort it first, or send force: true" in str(busy.value)
    client.steer(running["release"], "abort")

    # The previous version's server is out of service in HAProxy: nothing to roll back to.
    runtime = RuntimeClient(demo.haproxy_socket)
    runtime.run(f"set server {SERVICE}/{previous} state maint")
    try:
        with pytest.raises(ApiClientError) as down:
            client.rollback(SERVICE)
        assert (
            down.value.status == 409
            and f"{previous} cannot take traffic" in str(down.value)
            and "MAINT" in str(down.value)
        )
        assert haproxy_weights(demo)[EXTRA] == 100  # nothing was changed
    finally:
        runtime.run(f"set server {SERVICE}/{previous} state ready")
    done = client.rollback(SERVICE, by="carol")
    assert done["state"] == "succeeded" and haproxy_weights(demo)[previous] == 100
