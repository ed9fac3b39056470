"""A release through the demo's real stack with Sluice's store behind Redis Sentinel, and the master
killed in the middle of it (tests/e2e/test_sentinel_*failover.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app.cli.client import ApiClientError, SluiceClient
from app.cli.demo.run import BAD, DEMO_VERSIONS, GOOD, SERVICE, STABLE, DemoStack, LoadGenerator
from integrations.haproxy.runtime import RuntimeClient
from tests.support.sentinel import SentinelStack

PASSWORD = "e2e-failover-Pa55word"
CANDIDATE = "1.0.380"  # a good version (the demo's GOOD service), released from STABLE
BAD_CANDIDATE = "1.0.381"  # a bad one (the demo's BAD service: errors), released after it
# Events a release records once per step (or once per release); "hold" may repeat, and hook deliveries
# are counted on their own (as the stand-in CI received them).
ONCE_PER_STEP = {"created", "started", "weights_set", "step_passed", "succeeded", "failed", "aborted"}


def failover_stack(
    tmp_path_factory: pytest.TempPathFactory, down_after_ms: int
) -> Iterator[tuple[DemoStack, LoadGenerator, SentinelStack]]:
    workdir = tmp_path_factory.mktemp("sentinel-e2e")
    sentinels = SentinelStack(workdir / "redis", password=PASSWORD, down_after_ms=down_after_ms)
    versions = {**DEMO_VERSIONS, CANDIDATE: DEMO_VERSIONS[GOOD], BAD_CANDIDATE: DEMO_VERSIONS[BAD]}
    demo = DemoStack(workdir, versions=versions)
    load = None
    try:
        sentinels.start()
        demo.redis_url = sentinels.url()
        demo.start(say=lambda _m: None)
        load = LoadGenerator(demo.frontend_url, rate=40).start()
        demo.wait_for_scrapes()
        yield demo, load, sentinels
    finally:
        if load:
            load.stop()
        demo.stop()
        sentinels.stop()


def patiently(call: Any, timeout: float = 60.0) -> Any:
    """An API call, retried while Sluice answers 503 (Redis failing over) or cannot be reached."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiClientError as exc:
            if exc.status not in (None, 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wait_for(client: SluiceClient, release_id: str, done: Any, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        release = patiently(lambda: client.release(release_id))
        if done(release) or time.monotonic() > deadline:
            return release
        time.sleep(0.3)


def candidate_weights(release: dict[str, Any], version: str) -> list[int]:
    return [e["data"]["weights"].get(version, 0) for e in release["events"] if e["type"] == "weights_set"]


def good_release_across_a_failover(stack: tuple[DemoStack, LoadGenerator, SentinelStack]) -> int:
    """Kill the master at the 50% step; the release must finish right. Returns what `/readyz` of the
    web process answered right after the kill."""
    demo, _load, sentinels = stack
    client = demo.client()
    answer = client.deploy(SERVICE, CANDIDATE, application="bluesky")
    assert answer["source_version"] == STABLE
    rid = answer["release"]

    at_half = wait_for(client, rid, lambda r: candidate_weights(r, CANDIDATE) == [10, 50], timeout=90)
    assert candidate_weights(at_half, CANDIDATE) == [10, 50], at_half["events"]
    old = sentinels.kill_master()
    killed_at = time.time()
    readiness = requests.get(f"{demo.api_url}/readyz", timeout=30)
    assert readiness.status_code in (200, 503) and PASSWORD not in readiness.text
    new = sentinels.wait_for_new_master(old)
    promoted_after = time.time() - killed_at

    release = wait_for(client, rid, lambda r: r["state"] != "running" and r["state"] != "pending")
    assert release["state"] == "succeeded", (release["state"], release["reason"])
    assert candidate_weights(release, CANDIDATE) == [10, 50, 100]
    # The last step was decided and recorded after the kill: by the promoted replica, the old master is gone.
    assert [e["type"] for e in release["events"] if e["at"] > killed_at].count("weights_set") == 1
    # A doubled event (a write retried after it had landed, or a step decided twice) repeats its message.
    once = Counter((e["type"], e["message"]) for e in release["events"] if e["type"] in ONCE_PER_STEP)
    assert all(n == 1 for n in once.values()), [k for k, n in once.items() if n > 1]
    assert len(once) >= 5, [(e["type"], e["message"]) for e in release["events"]]

    weights = {name: info["weight"] for name, info in RuntimeClient(demo.haproxy_socket).servers(SERVICE).items()}
    assert weights[CANDIDATE] == 100 and all(w == 0 for v, w in weights.items() if v != CANDIDATE), weights

    # Hook deliveries: recorded once each, sent once each (the stand-in CI counts what it received).
    deadline = time.monotonic() + 30
    while any(d["state"] == "pending" for d in release["hook_deliveries"]) and time.monotonic() < deadline:
        time.sleep(0.3)
        release = patiently(lambda: client.release(rid))
    assert [d["state"] for d in release["hook_deliveries"]] == ["delivered", "delivered"]
    assert demo.receiver is not None
    got = [r for r in demo.receiver.received if r["payload"]["release"]["release_id"] == rid]
    assert [(r["event"], r["verified"]) for r in got] == [("started", True), ("succeeded", True)]
    assert len({r["delivery"] for r in got}) == len(got)

    # The same processes carried on: no worker or web process had to be restarted.
    assert all(p.proc is not None and p.proc.poll() is None for p in demo.processes if p.name.startswith("sluice"))
    assert new != old
    logs = "".join(Path(p.log).read_text(errors="replace") for p in demo.processes if p.name.startswith("sluice"))
    assert PASSWORD not in logs
    print(
        f"failover: replica promoted {promoted_after:.1f}s after the SIGKILL; /readyz right after the kill: "
        f"{readiness.status_code}; release {rid} "
        f"{release['state']} in {release['duration_seconds']:.0f}s; events: "
        + "; ".join(f"{e['type']}: {e['message']}" for e in release["events"])
    )
    return readiness.status_code
