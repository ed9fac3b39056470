"""`make demo`'s segment step, end to end on the real stack (Redis, HAProxy, Prometheus, gunicorn,
Sluice web + worker): during the first step only requests with the Chrome User-Agent reach the new
version, the others stay on stable; then the weighted steps; the HAProxy map is empty at the end,
whether the release was promoted or rolled back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.cli.demo.run import BAD, GOOD, SERVICE, STABLE, DemoStack, LoadGenerator, segment_traffic
from integrations.haproxy.runtime import RuntimeClient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    demo = DemoStack(tmp_path_factory.mktemp("demo-segment"), segment=True)
    load = None
    try:
        demo.start(say=lambda _m: None)
        load = LoadGenerator(demo.frontend_url, rate=40, segment_every=4).start()
        demo.wait_for_scrapes()
        yield demo, load
    finally:
        if load:
            load.stop()
        demo.stop()


def finished(client, release_id: str, timeout: float = 180.0) -> dict:
    deadline = time.time() + timeout
    release = client.release(release_id)
    while time.time() < deadline and release["state"] not in ("succeeded", "failed", "aborted"):
        time.sleep(0.5)
        release = client.release(release_id)
    return release


def segment_map(demo: DemoStack) -> list[tuple[str, str]]:
    return RuntimeClient(demo.haproxy_socket).show_map(str(Path(demo.workdir) / "segment.map"))


def test_only_chrome_reaches_the_new_version_in_the_segment_step_then_weights(stack):
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, GOOD, application="bluesky")
    release = finished(client, answer["release"])
    assert release["state"] == "succeeded", release["reason"]

    changes = [e for e in release["events"] if e["type"] == "weights_set"]
    assert "segment header User-Agent ~ /Chrome/ -> 1.0.371" in changes[0]["message"]
    assert [e["data"]["weights"].get(GOOD, 0) for e in changes] == [0, 10, 50, 100]
    seen = segment_traffic(load, release)
    assert seen is not None
    assert set(seen[True]) == {GOOD} and seen[True][GOOD] >= 10, seen  # Chrome: the new version only
    assert set(seen[False]) == {STABLE} and seen[False][STABLE] >= 30, seen  # the rest: stable only
    assert segment_map(demo) == []  # the segment went with its step


def test_a_bad_version_fails_in_its_segment_and_the_map_is_emptied(stack):
    demo, load = stack
    client = demo.client()
    answer = client.deploy(SERVICE, BAD, application="bluesky")
    release = finished(client, answer["release"])
    assert release["state"] == "failed"
    assert "errors" in release["reason"]
    assert segment_map(demo) == []
    rolled_back_at = [e for e in release["events"] if e["type"] == "weights_set"][-1]["at"]
    time.sleep(1.5)
    after = load.by_segment(rolled_back_at + 0.5, time.time())
    assert set(after[True]) == {GOOD} and set(after[False]) == {GOOD}, after  # everyone on stable (1.0.371)
