"""End to end, as `make demo` runs it: real Redis, HAProxy, Prometheus, gunicorn, Sluice web + worker.

Asserts what a person would check: the backends' real request counts follow the weights,
a bad version ends with no traffic, the release record holds every check's values, CI's
stand-in receives signed webhooks, and `sluice watch` exits 0 / 1 / 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.cli.demo.run import BAD, DEMO_VERSIONS, GOOD, SERVICE, STABLE, DemoStack
from app.cli.demo.stack import Process
from integrations.haproxy.runtime import RuntimeClient
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
EXTRA = "1.0.373"
SURVIVOR = "1.0.374"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    versions = {**DEMO_VERSIONS, EXTRA: DEMO_VERSIONS[GOOD], SURVIVOR: DEMO_VERSIONS[GOOD]}
    stack = DemoStack(tmp_path_factory.mktemp("demo"), versions=versions)
    yield from running(stack)


def watch(stack: DemoStack, release_id: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_URL": stack.api_url, "SLUICE_API_TOKEN": stack.token}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "watch", release_id, "--interval", "0.5", "--timeout", "180"],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )


def settled(client, release_id: str, timeout: float = 15.0) -> dict:
    """The release once none of its hook deliveries is still pending (or the timeout passed)."""
    deadline = time.time() + timeout
    release = client.release(release_id)
    while time.time() < deadline and any(d["state"] == "pending" for d in release["hook_deliveries"]):
        time.sleep(0.2)
        release = client.release(release_id)
    return release


def share(counts: dict[str, int], version: str) -> float:
    total = sum(counts.values())
    return counts.get(version, 0) / total if total else 0.0


def weight_changes(release: dict) -> list[tuple[float, dict[str, int]]]:
    return [(e["at"], e["data"]["weights"]) for e in release["events"] if e["type"] == "weights_set"]


def test_good_version_is_promoted_with_traffic_following_the_weights(stack):
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, GOOD, application="bluesky")
    assert answer["source_version"] == STABLE
    result = watch(demo, answer["release"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    release = client.release(answer["release"])
    assert release["state"] == "succeeded"

    changes = weight_changes(release)
    assert [w.get(GOOD, 0) for _, w in changes] == [10, 50, 100]
    # Real responses through HAProxy, per step (skip 0.3 s after each change for in-flight requests).
    for (start, weights), (end, _) in zip(changes, changes[1:], strict=False):
        counts = load.between(start + 0.3, end)
        expected = weights[GOOD] / 100
        assert abs(share(counts, GOOD) - expected) < 0.12, (weights, counts)
    time.sleep(1)
    after = load.between(changes[-1][0] + 0.3, time.time())
    assert share(after, GOOD) == 1.0, after

    # Every evaluation is on the record with its value, threshold and verdict.
    # Comparisons with stable on counts are always on; the policy's `errors` (max_over_stable only)
    # is the errors comparison's margin, `fast-responses` a guard, `traffic` a floor.
    evaluations = release["evaluations"]
    names = {e["name"] for e in evaluations}
    comparisons = {"errors-vs-stable", "4xx-vs-stable", "slow-vs-stable", "latency-vs-stable"}
    assert names == {"health", "fast-responses", "traffic"} | comparisons
    # Holding for evidence is expected; nothing fails. The one "no data": slow-vs-stable at the tick
    # right after warmup, when the latency span is shorter than a scrape interval and Prometheus has
    # no counts for it (a known judge bug, tests/app/test_decide.py; the demo holds on no data).
    transient = [
        e for e in evaluations if e["verdict"] == "no_data" and e["name"] == "slow-vs-stable" and e["step"] == 0
    ]
    assert all((e["verdict"] in ("pass", "insufficient") or e in transient) and e["threshold"] for e in evaluations), [
        (e["name"], e["step"], e["verdict"], e["detail"])
        for e in evaluations
        if e["verdict"] not in ("pass", "insufficient")
    ]
    assert len(transient) <= 1, transient
    for step in range(3):
        latest = {e["name"]: e for e in evaluations if e["step"] == step}  # the evaluation that passed the step
        assert set(latest) == names
        assert all(e["verdict"] == "pass" and e["value"] is not None for e in latest.values()), latest
        for name in comparisons:
            evidence = latest[name]["evidence"]
            assert evidence["requests"][0] > 0 and evidence["requests"][1] > 0, (step, name, evidence)
            assert evidence["reference"] == ("stable" if step < 2 else "stable (earlier steps)"), evidence
        assert latest["errors-vs-stable"]["evidence"]["margin"] == 0.01  # the policy's max_over_stable
    # The stand-in CI got signed webhooks for started and succeeded. Hooks are delivered after the
    # release has ended (a release does not wait for its receivers), so give them a moment.
    release = settled(client, answer["release"])
    assert [d["state"] for d in release["hook_deliveries"]] == ["delivered", "delivered"]
    got = [
        (r["event"], r["verified"])
        for r in demo.receiver.received
        if r["payload"]["release"]["release_id"] == answer["release"]
    ]
    assert got == [("started", True), ("succeeded", True)]


def test_bad_version_is_rolled_back_and_ends_with_no_traffic(stack):
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, BAD, application="bluesky")
    assert answer["source_version"] == GOOD
    result = watch(demo, answer["release"])
    assert result.returncode == 1, result.stdout + result.stderr
    release = client.release(answer["release"])
    assert release["state"] == "failed"
    reason = release["reason"]
    assert reason.startswith("check 'errors-vs-stable' failed") and "(decisive)" in reason, reason
    assert "stable + 1 points" in reason  # the policy's max_over_stable: 0.01
    failing = [e for e in release["evaluations"] if e["verdict"] == "fail"]
    assert failing and failing[0]["name"] == "errors-vs-stable" and failing[0]["value"] > 0.1

    changes = weight_changes(release)
    assert {v: w for v, w in changes[-1][1].items() if w} == {GOOD: 100}
    rolled_back_at = changes[-1][0]
    time.sleep(2)
    after = load.between(rolled_back_at + 0.5, time.time())
    assert after.get(BAD, 0) == 0 and after.get(GOOD, 0) > 20, after
    weights = {name: info["weight"] for name, info in RuntimeClient(demo.haproxy_socket).servers(SERVICE).items()}
    assert weights[BAD] == 0 and weights[GOOD] == 100
    settled(client, answer["release"])
    payloads = [r["payload"] for r in demo.receiver.received if r["event"] == "failed"]
    assert payloads and payloads[-1]["cleanup_version"] == GOOD


def test_abort_puts_traffic_back_on_stable_at_once(stack):
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, EXTRA, application="bluesky")
    deadline = time.time() + 60
    while time.time() < deadline and client.release(answer["release"]).get("current_step") != 2:
        time.sleep(0.3)
    assert client.release(answer["release"])["current_step"] == 2
    aborted = client.steer(answer["release"], "abort", reason="on-call: looks wrong")
    aborted_at = time.time()
    assert aborted["state"] == "aborted" and aborted["weights"] == {GOOD: 100}
    assert "on-call" in aborted["reason"]
    weights = {name: info["weight"] for name, info in RuntimeClient(demo.haproxy_socket).servers(SERVICE).items()}
    assert weights[EXTRA] == 0 and weights[GOOD] == 100
    time.sleep(1.5)
    assert load.between(aborted_at + 0.3, time.time()).get(EXTRA, 0) == 0
    assert watch(demo, answer["release"]).returncode == 2


def test_release_survives_a_worker_killed_mid_release(stack):
    """SIGKILL the only worker during step 1; a new worker picks the release up and completes it."""
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, SURVIVOR, application="bluesky")
    deadline = time.time() + 30
    while time.time() < deadline and client.release(answer["release"]).get("current_step") != 1:
        time.sleep(0.2)
    worker = next(p for p in demo.processes if p.name.startswith("sluice-worker"))
    worker.kill()
    time.sleep(3)  # the release is stuck while no worker runs
    assert client.release(answer["release"])["state"] == "running"
    replacement = Process(
        "sluice-worker-2", [sys.executable, "-m", "app.cli.main", "worker"], worker.workdir, env=demo.sluice_env()
    ).start()
    demo.processes.append(replacement)
    result = watch(demo, answer["release"])
    assert result.returncode == 0, result.stdout + result.stderr
    release = client.release(answer["release"])
    assert [w.get(SURVIVOR, 0) for _, w in weight_changes(release)] == [10, 50, 100]
    steps = sorted({e["step"] for e in release["evaluations"]})
    assert steps == [0, 1, 2]
