"""A Redis failover in the middle of a release (issue 12), through the real stack: the demo's HAProxy,
Prometheus, gunicorn services and Sluice web + worker processes, with Sluice's store behind Redis
Sentinel (a master, a replica, 3 sentinels; Debian's redis-server and redis-sentinel).

While the release is at its 50% step the master is SIGKILLed; the sentinels promote the replica; the
worker, the scheduler and the web app find the new master on their own (no restart), and the release
reaches its verdict with every step, event and hook delivery exactly once, and HAProxy's weights where
the verdict says."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from app.cli.client import ApiClientError
from app.cli.demo.run import SERVICE, DemoStack, LoadGenerator
from integrations.haproxy.runtime import RuntimeClient
from tests.support.failover_release import (
    BAD_CANDIDATE,
    ONCE_PER_STEP,
    candidate_weights,
    failover_stack,
    good_release_across_a_failover,
    patiently,
    wait_for,
)
from tests.support.sentinel import SentinelStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, LoadGenerator, SentinelStack]]:
    """Sentinels that call a master down after 1 s: the failover fits in a Redis call's retries."""
    yield from failover_stack(tmp_path_factory, 1000)


def test_a_release_finishes_right_across_a_master_failover(
    stack: tuple[DemoStack, LoadGenerator, SentinelStack],
) -> None:
    good_release_across_a_failover(stack)


def test_a_bad_release_is_rolled_back_across_a_second_failover_to_the_old_master(
    stack: tuple[DemoStack, LoadGenerator, SentinelStack],
) -> None:
    """The master killed by the first test comes back (a replica now, the sentinels see to it); the
    current master is killed at a bad release's first step, the old one is promoted again, and the
    bad version is rolled back: its weight 0 in HAProxy, `failed` delivered once."""
    demo, _load, sentinels = stack
    dead = next(
        (port for proc, port in sentinels.servers if proc.proc is not None and proc.proc.poll() is not None), None
    )
    if dead is not None:
        sentinels.restart(dead)
    client = demo.client()
    answer = patiently(lambda: client.deploy(SERVICE, BAD_CANDIDATE, application="bluesky"))
    rid, source = answer["release"], answer["source_version"]

    assert patiently(lambda: client.release(rid))["id"] == rid, sentinels.describe()
    started = wait_for(client, rid, lambda r: candidate_weights(r, BAD_CANDIDATE)[:1] == [10], timeout=60)
    assert candidate_weights(started, BAD_CANDIDATE)[:1] == [10], started["events"]
    old = sentinels.kill_master()
    killed_at = time.time()
    new = sentinels.wait_for_new_master(old)
    assert dead is None or new == dead

    try:
        # The failure is recorded before the router is told (record, then act): wait for both, the
        # failed state and the weights_set event of the rollback that follows it.
        release = wait_for(
            client,
            rid,
            lambda r: r["state"] not in ("running", "pending") and candidate_weights(r, BAD_CANDIDATE)[-1:] == [0],
        )
    except ApiClientError as exc:  # seen once in ~8 runs: a 404 for the release; say where the data was
        raise AssertionError(f"{exc}\n{sentinels.describe()}") from exc
    assert release["state"] == "failed", (release["state"], release["reason"])
    assert "errors-vs-stable" in release["reason"], release["reason"]
    assert candidate_weights(release, BAD_CANDIDATE) == [10, 0]
    assert any(e["at"] > killed_at for e in release["events"] if e["type"] == "failed")
    once = Counter((e["type"], e["message"]) for e in release["events"] if e["type"] in ONCE_PER_STEP)
    assert all(n == 1 for n in once.values()), [k for k, n in once.items() if n > 1]

    weights = {name: info["weight"] for name, info in RuntimeClient(demo.haproxy_socket).servers(SERVICE).items()}
    assert weights[BAD_CANDIDATE] == 0 and weights[source] == 100, weights
    deadline = time.monotonic() + 30
    while any(d["state"] == "pending" for d in release["hook_deliveries"]) and time.monotonic() < deadline:
        time.sleep(0.3)
        release = patiently(lambda: client.release(rid))
    assert demo.receiver is not None
    got = [r for r in demo.receiver.received if r["payload"]["release"]["release_id"] == rid]
    assert [(r["event"], r["verified"]) for r in got] == [("started", True), ("failed", True)]
    assert all(p.proc is not None and p.proc.poll() is None for p in demo.processes if p.name.startswith("sluice"))
