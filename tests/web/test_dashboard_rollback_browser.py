"""The dashboard's Roll back button in a real browser (headless Chromium) against a real release on
HAProxy: on a promoted release, the button asks for confirmation (dismissed: nothing happens),
then puts all traffic back on the previous version, links the rollback release, and the page's
known-bad line names the version taken out."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.cli.demo.run import GOOD, SERVICE, STABLE, DemoStack
from tests.support.demo_stack import running
from tests.web.test_dashboard_browser import browser, haproxy_weights, open_logged_in, page

pytestmark = pytest.mark.e2e
__all__ = ["browser", "page"]  # the browser fixtures, shared with test_dashboard_browser.py


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = DemoStack(tmp_path_factory.mktemp("dash-rollback"), interval="1s", step="4s", last_step="3s")
    yield from running(stack)


def test_roll_back_a_promotion_from_the_dashboard(stack, page, artifacts):
    demo_stack, load = stack
    client = demo_stack.client()
    rid = client.deploy(SERVICE, GOOD, application="bluesky")["release"]
    env = {**os.environ, "SLUICE_URL": demo_stack.api_url, "SLUICE_API_TOKEN": demo_stack.token}
    watched = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "watch", rid, "--interval", "0.5", "--timeout", "180"],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr

    open_logged_in(page, demo_stack, f"/releases/{rid}")
    page.wait_for_selector('body[data-state="succeeded"]', timeout=15_000)
    button = page.locator('button[data-action="rollback"]')
    assert button.is_enabled()
    assert page.locator("#known-bad").is_hidden()
    page.fill("#token", demo_stack.token)

    # The confirmation names what will happen; dismissing it changes nothing.
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    button.click()
    page.wait_for_timeout(500)
    assert asked and f"put all traffic back on {STABLE}" in asked[0] and f"{GOOD} becomes known-bad" in asked[0]
    assert haproxy_weights(demo_stack)[GOOD] == 100

    page.once("dialog", lambda d: d.accept())
    button.click()
    page.wait_for_selector("#control-msg.ok a", timeout=15_000)
    rolled_back_at = time.time()
    message = page.locator("#control-msg").inner_text()
    assert message.startswith("rollback succeeded: release r-"), message
    weights = haproxy_weights(demo_stack)
    assert weights[STABLE] == 100 and weights[GOOD] == 0, weights
    page.wait_for_selector("#known-bad:not([hidden])", timeout=10_000)
    line = page.locator("#known-bad").inner_text()
    assert f"{GOOD} rolled back by api:the dashboard" in line, line
    page.screenshot(path=str(artifacts / "release-rolled-back.png"), full_page=True)

    time.sleep(2.0)
    after = load.between(rolled_back_at + 0.5, time.time())
    assert after.get(GOOD, 0) == 0 and after.get(STABLE, 0) > 20, after

    # The link opens the rollback's own release: one step at 100% on the previous version.
    page.locator("#control-msg a").click()
    page.wait_for_selector('body[data-state="succeeded"]', timeout=15_000)
    rollback = client.releases(service=SERVICE)["releases"][0]
    assert page.url.endswith(f"/releases/{rollback['id']}")
    assert (rollback["trigger"], rollback["actor"], rollback["target_version"]) == (
        "rollback",
        "api:the dashboard",
        STABLE,
    )
    assert page.locator('button[data-action="rollback"]').is_disabled()  # a rollback is not undone from here
