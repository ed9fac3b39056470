"""Shadow releases end to end, on the demo stack: real Redis, HAProxy, Prometheus, gunicorn, Sluice web
and worker, steady load, and the stand-in CI's webhook receiver.

A team shifts traffic by hand (HAProxy's runtime API, as an operator would); Sluice, in shadow, judges
the candidate on the traffic it really gets and never changes a weight: HAProxy's weights are read
every few hundred milliseconds while each release runs, and must never move. The dashboard shows the
shadow release apart (headless Chromium, when installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.demo.run import BAD, DEMO_VERSIONS, GOOD, SERVICE, STABLE, DemoStack
from integrations.haproxy.runtime import RuntimeClient
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
# Versions of their own, so that no test here is a duplicate of another's release.
GOOD_TOO, BAD_TOO = "1.0.381", "1.0.382"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    versions = {**DEMO_VERSIONS, GOOD_TOO: DEMO_VERSIONS[GOOD], BAD_TOO: DEMO_VERSIONS[BAD]}
    stack = DemoStack(tmp_path_factory.mktemp("shadow"), versions=versions)
    yield from running(stack)


def haproxy_weights(stack: DemoStack) -> dict[str, int]:
    runtime = RuntimeClient(stack.haproxy_socket)
    return {name: info["weight"] for name, info in runtime.servers(SERVICE).items()}


def shift_by_hand(stack: DemoStack, weights: dict[str, int]) -> dict[str, int]:
    """What a team still releasing by hand does: set HAProxy's weights itself (every other server 0)."""
    runtime = RuntimeClient(stack.haproxy_socket)
    for name in runtime.servers(SERVICE):
        runtime.set_weight(SERVICE, name, weights.get(name, 0))
    return haproxy_weights(stack)


class WeightWatch:
    """Reads HAProxy's weights every 0.3 s in the background: every distinct reading is kept."""

    def __init__(self, stack: DemoStack) -> None:
        self.stack = stack
        self.seen: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WeightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            weights = haproxy_weights(self.stack)
            if not self.seen or self.seen[-1] != weights:
                self.seen.append(weights)
            self._stop.wait(0.3)


def finish(client, release_id: str, timeout: float = 150.0) -> dict:
    deadline = time.time() + timeout
    release = client.release(release_id)
    while time.time() < deadline and release["state"] not in ("succeeded", "failed", "aborted"):
        time.sleep(0.5)
        release = client.release(release_id)
    return release


def webhooks(stack: DemoStack, release_id: str, timeout: float = 15.0, count: int = 2) -> list[dict]:
    deadline = time.time() + timeout
    got: list[dict] = []
    while time.time() < deadline:
        assert stack.receiver is not None
        got = [r for r in stack.receiver.received if r["payload"]["release"]["release_id"] == release_id]
        if len(got) >= count:
            break
        time.sleep(0.2)
    return got


def test_good_candidate_shifted_by_hand_passes_in_shadow_with_haproxy_untouched(stack):
    demo, load = stack
    client = demo.client()
    by_hand = shift_by_hand(demo, {STABLE: 70, GOOD: 30})
    time.sleep(3)  # a few scrapes with the candidate's traffic
    with WeightWatch(demo) as watch:
        answer = client.deploy(SERVICE, GOOD, application="bluesky", mode="shadow")
        assert answer["mode"] == "shadow" and answer["source_version"] == STABLE
        release = finish(client, answer["release"])
    assert release["state"] == "succeeded", release["reason"]
    assert watch.seen == [by_hand]  # not one change, at any step
    assert len(watch.seen[0]) == len(demo.versions)

    # Every step ran on its timer and every check judged the counts the candidate really had.
    evaluations = release["evaluations"]
    assert {e["step"] for e in evaluations} == {0, 1, 2}
    passed = [e for e in evaluations if e["name"] == "errors-vs-stable" and e["verdict"] == "pass"]
    assert {e["step"] for e in passed} == {0, 1, 2}
    for e in passed:
        assert e["evidence"]["requests"][0] > 0 and e["evidence"]["requests"][1] > 0
        assert e["evidence"]["reference"] == "stable"  # stable kept its 70%, even at the "100%" step
    observed = [e for e in release["events"] if e["type"] == "weights_observed"]
    assert [e["data"]["would_set"].get(GOOD) for e in observed] == [10, 50, 100]
    assert all(e["data"]["weights"] == {STABLE: 70, GOOD: 30, **{v: 0 for v in by_hand if v not in (STABLE, GOOD)}}
               for e in observed)  # fmt: skip
    assert not [e for e in release["events"] if e["type"] == "weights_set"]
    # The candidate kept its hand-set share of real responses after the verdict.
    time.sleep(1.5)
    after = load.between(time.time() - 1.5, time.time())
    assert after.get(GOOD, 0) > 0 and after.get(STABLE, 0) > after.get(GOOD, 0), after

    # The stand-in CI got the signed webhooks, marked shadow.
    got = webhooks(demo, answer["release"])
    assert [(r["event"], r["verified"], r["payload"]["shadow"]) for r in got] == [
        ("started", True, True),
        ("succeeded", True, True),
    ]
    # A shadow success changes nothing Sluice knows: the stable version is still STABLE, nobody owns
    # the service, and announcing the version again in shadow finds the same release.
    (app,) = client._request("GET", "/api/v1/applications")["applications"]
    (svc,) = app["services"]
    assert svc["stable_version"] == STABLE and svc["active_release"] is None
    assert client.deploy(SERVICE, GOOD, application="bluesky", mode="shadow")["duplicate"] is True


def test_bad_candidate_in_shadow_is_judged_failed_and_haproxy_keeps_its_weights(stack):
    demo, load = stack
    client = demo.client()
    by_hand = shift_by_hand(demo, {STABLE: 80, BAD: 20})
    time.sleep(3)
    with WeightWatch(demo) as watch:
        answer = client.deploy(SERVICE, BAD, application="bluesky", mode="shadow")
        release = finish(client, answer["release"])
    assert release["state"] == "failed"
    assert release["reason"].startswith("check 'errors-vs-stable' failed"), release["reason"]
    assert watch.seen == [by_hand]  # judged failed, and not rolled back: that is the team's call
    time.sleep(1.5)
    after = load.between(time.time() - 1.5, time.time())
    assert after.get(BAD, 0) > 0, after  # the bad version still serves its hand-set share
    got = webhooks(demo, answer["release"])
    assert [(r["event"], r["payload"]["shadow"]) for r in got] == [("started", True), ("failed", True)]


def test_a_real_release_runs_undisturbed_next_to_a_shadow_one(stack):
    demo, _load = stack
    client = demo.client()
    shift_by_hand(demo, {STABLE: 100})
    # The shadow release first: its candidate has no traffic, so it waits for evidence.
    shadow = client.deploy(SERVICE, BAD_TOO, application="bluesky", mode="shadow")
    # A real release starts while it runs, and is not blocked or superseded by it.
    live = client.deploy(SERVICE, GOOD_TOO, application="bluesky")
    assert live["mode"] == "live" and live["source_version"] == STABLE
    release = finish(client, live["release"])
    assert release["state"] == "succeeded", release["reason"]
    changes = [e["data"]["weights"] for e in release["events"] if e["type"] == "weights_set"]
    assert [w.get(GOOD_TOO, 0) for w in changes] == [10, 50, 100]
    assert haproxy_weights(demo)[GOOD_TOO] == 100
    # The shadow release was neither superseded nor allowed to touch the router.
    shadowed = client.release(shadow["release"])
    assert shadowed["state"] == "running", shadowed["reason"]
    assert not [e for e in shadowed["events"] if e["type"] == "weights_set"]
    aborted = client.steer(shadow["release"], "abort", reason="seen enough")
    assert aborted["state"] == "aborted"
    weights = haproxy_weights(demo)
    assert weights[GOOD_TOO] == 100 and weights[BAD_TOO] == 0, weights
    listing = client.releases()["releases"]
    modes = {r["id"]: r["mode"] for r in listing}
    assert modes[shadow["release"]] == "shadow" and modes[live["release"]] == "live"
    # `sluice status` (the list, and one release) marks the shadow release and only it.
    env = {**os.environ, "SLUICE_URL": demo.api_url, "SLUICE_API_TOKEN": demo.token, "NO_COLOR": "1"}
    cli = [sys.executable, "-m", "app.cli.main", "status"]
    lines = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    marked = {line.split()[0] for line in lines if "[shadow]" in line}
    assert shadow["release"] in marked and live["release"] not in marked
    one = subprocess.run([*cli, shadow["release"]], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "[shadow]" in one.stdout and "traffic not moved by Sluice" in one.stdout


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-system-packages.sh installs it)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        try:
            yield b
        finally:
            b.close()


def test_the_dashboard_shows_shadow_releases_apart(stack, browser, artifacts):
    demo, _load = stack
    client = demo.client()
    shadows = [r for r in client.releases()["releases"] if r["mode"] == "shadow"]
    live = [r for r in client.releases()["releases"] if r["mode"] == "live"]
    assert shadows and live, "run after the releases above"
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{demo.api_url}/")
    page.wait_for_selector("#login-token", timeout=10_000)
    page.fill("#login-token", demo.token)
    page.locator('#login button[type="submit"]').click()
    row = page.locator(f'tr[data-release="{shadows[0]["id"]}"]')
    row.wait_for(timeout=10_000)
    assert row.locator(".mode-shadow").inner_text().lower() == "shadow"
    assert page.locator(f'tr[data-release="{live[0]["id"]}"] .mode-shadow').count() == 0
    page.screenshot(path=str(artifacts / "dashboard-list-shadow.png"))

    failed = next(r for r in shadows if r["state"] == "failed")
    page.goto(f"{demo.api_url}/releases/{failed['id']}")
    page.wait_for_selector('body[data-state="failed"]', timeout=15_000)
    assert page.locator("#h-mode .mode-shadow").inner_text().lower() == "shadow"
    assert "did not move traffic" in page.locator("#shadow-line").inner_text()
    verdict = page.locator("#verdict").inner_text()
    assert "Judged failed (shadow: nothing rolled back)" in verdict and "Rolled back:" not in verdict
    assert "not moved by Sluice" in page.locator("#traffic").inner_text()
    page.screenshot(path=str(artifacts / "release-shadow-failed.png"), full_page=True)
    page.context.close()
