"""The dashboard in a real browser (headless Chromium, the Debian package) against a real release.

A DemoStack (Redis, HAProxy, Prometheus, three versions of the demo service, Sluice web +
worker) runs a slow policy so that the page can be watched while the release is running
(after logging in as a person would: reads need a token):
the step and a chart update live, and the abort button (with the token typed into the page)
ends the release with traffic back on stable, as HAProxy and the load generator both show.
A bad version's failed release is screenshotted for docs/api.md (docs/release-failed.png).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.demo import sandbox as demo
from app.cli.demo.run import BAD, GOOD, SERVICE, STABLE, DemoStack
from integrations.haproxy.runtime import RuntimeClient
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch):
    # Tolerate two failed health evaluations (comparisons with stable fail at once, whatever the tolerance).
    monkeypatch_module.setattr(demo, "CONFIG_TEMPLATE", demo.CONFIG_TEMPLATE.replace("tolerance: 0", "tolerance: 2"))
    stack = DemoStack(tmp_path_factory.mktemp("dash"), step="20s", last_step="10s", interval="2s")
    yield from running(stack)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-system-packages.sh installs it)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    external: list[str] = []
    pg.on("request", lambda req: external.append(req.url) if not req.url.startswith("http://127.0.0.1") else None)
    yield pg
    context.close()
    assert not errors, errors
    assert not external, f"the dashboard loaded something from outside: {external}"


def open_logged_in(page, stack: DemoStack, path: str) -> None:
    """Open a dashboard page as a person would: sent to the login form first, then back to the page."""
    page.goto(f"{stack.api_url}{path}")
    page.wait_for_selector("#login-token", timeout=10_000)
    assert "/login?next=" in page.url
    page.fill("#login-token", stack.token)
    page.locator('#login button[type="submit"]').click()
    page.wait_for_url(f"{stack.api_url}{path}")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sluice_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and stack.token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # out of scripts' reach


def haproxy_weights(stack: DemoStack) -> dict[str, int]:
    client = RuntimeClient(stack.haproxy_socket)
    return {name: client.get_weight(SERVICE, name) for name in client.servers(SERVICE)}


def test_watch_a_running_release_and_abort_it(stack, page, artifacts):
    demo_stack, load = stack
    answer = demo_stack.client().deploy(SERVICE, GOOD, application="bluesky")
    rid = answer["release"]

    open_logged_in(page, demo_stack, "/")
    row = page.locator(f'tr[data-release="{rid}"]')
    row.wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "dashboard-list.png"))
    row.locator("a").click()
    page.wait_for_url(f"**/releases/{rid}")

    # Live: the running step is shown and the charts gain points as evaluations arrive.
    page.wait_for_selector('body[data-state="running"][data-step="1"]', timeout=15_000)
    current = page.locator("#steps li.current")
    assert current.get_attribute("data-step") == "1"
    assert "10%" in current.inner_text()
    errors_chart = page.locator('.check[data-check="errors-vs-stable"]')
    errors_chart.locator("canvas").wait_for(timeout=10_000)
    page.wait_for_function(
        "() => +document.querySelector('.check[data-check=\"errors-vs-stable\"]').dataset.points >= 1", timeout=15_000
    )
    before = int(errors_chart.get_attribute("data-points") or 0)
    page.wait_for_function(
        f"() => +document.querySelector('.check[data-check=\"errors-vs-stable\"]').dataset.points > {before}",
        timeout=15_000,
    )
    assert page.locator("#split").inner_text().count("%") == 2
    page.screenshot(path=str(artifacts / "release-running.png"), full_page=True)

    # Steer: without a token the page says so; with it, abort ends the release.
    page.locator('button[data-action="abort"]').click()
    assert "token" in page.locator("#control-msg").inner_text().lower()
    page.fill("#token", demo_stack.token)
    page.once("dialog", lambda d: d.accept())
    page.locator('button[data-action="abort"]').click()
    page.wait_for_selector('body[data-state="aborted"]', timeout=15_000)
    assert page.locator("#h-state").inner_text().lower() == "aborted"
    assert "Aborted" in page.locator("#verdict").inner_text()
    assert page.evaluate("sessionStorage.getItem('sluice-api-token')") == demo_stack.token
    aborted_at = time.time()
    page.screenshot(path=str(artifacts / "release-aborted.png"), full_page=True)

    # Traffic is back on stable: HAProxy's weights and the responses that come back.
    weights = haproxy_weights(demo_stack)
    assert weights.get(STABLE) and not weights.get(GOOD), weights
    time.sleep(2.0)
    after = load.between(aborted_at + 0.5, time.time())
    assert after.get(GOOD, 0) == 0 and after.get(STABLE, 0) > 20, after
    release = demo_stack.client().release(rid)
    assert release["state"] == "aborted" and "dashboard" in (release["reason"] or "")


def test_a_failed_release_says_why_at_the_top(stack, page, artifacts):
    demo_stack, _ = stack
    answer = demo_stack.client().deploy(SERVICE, BAD, application="bluesky")
    rid = answer["release"]
    open_logged_in(page, demo_stack, f"/releases/{rid}")
    page.wait_for_selector('body[data-state="failed"]', timeout=60_000)
    page.wait_for_timeout(300)  # the last render's canvases

    verdict = page.locator("#verdict")
    text = verdict.inner_text()
    assert "errors" in text and "step 1" in text.lower(), text
    assert "threshold" in text.lower() and "stable" in text, text
    failing = page.locator(".check.failing")
    assert failing.count() >= 1
    assert failing.first.get_attribute("data-check") == "errors-vs-stable"
    # The failing check comes first among the charts.
    assert page.locator(".check").first.get_attribute("data-check") == "errors-vs-stable"
    assert page.locator("#steps li.ended-failed").get_attribute("data-step") == "1"
    assert page.locator("#controls button:enabled").count() == 0
    # No empty card: the policy's `errors` check (error_rate, max_over_stable only) is the margin of
    # errors-vs-stable, and that card says so instead of a card of its own without a point.
    cards = page.locator(".check")
    assert all(int(cards.nth(i).get_attribute("data-points") or 0) > 0 for i in range(cards.count()))
    assert page.locator('.check[data-check="errors"]').count() == 0
    errors_card = page.locator('.check[data-check="errors-vs-stable"]').inner_text()
    assert "“errors”" in errors_card and "margin" in errors_card, errors_card

    shot = artifacts / "release-failed.png"
    page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_timeout(400)
    readme_shot = artifacts / "release-failed-readme.png"
    page.screenshot(path=str(readme_shot), full_page=True)
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(readme_shot, DOCS / "release-failed.png")

    # And the list shows it, filterable by state.
    page.goto(f"{demo_stack.api_url}/?state=failed")
    page.locator(f'tr[data-release="{rid}"]').wait_for(timeout=10_000)
    assert page.locator("#releases tbody tr").count() == 1


def test_deploys_that_matched_no_project_are_shown_with_their_fix(stack, page):
    """A CircleCI deploy from a slug no project matches (as the receiver counts it) shows on the
    releases page with the slug, how many were ignored, and what to do."""
    import redis

    from app.store import Store, keys

    demo_stack, _ = stack
    client = redis.Redis.from_url(demo_stack.redis_url)
    try:
        metrics = Store(client).metrics
        metrics.add([("circleci_unmatched_deploys", ("github/acme/typo-shop",))] * 2)
        open_logged_in(page, demo_stack, "/")
        item = page.locator('#unmatched li[data-slug="github/acme/typo-shop"]')
        item.wait_for(timeout=10_000)
        assert page.locator("#unmatched").is_visible()
        text = item.inner_text()
        assert "2 deploy(s) ignored" in text and "circleci.projects" in text
    finally:
        client.delete(keys.metrics_counter("circleci_unmatched_deploys"))
        client.close()


def test_delivery_outcomes_show_the_failed_and_the_aborted_release(stack, page, artifacts):
    """After the tests above (one release aborted, one rolled back by the judge): the releases page's
    delivery card counts them for the service, with the change failure rate and the time to detect."""
    demo_stack, _ = stack
    open_logged_in(page, demo_stack, "/")
    row = page.locator(f'#delivery tr[data-service="bluesky/{SERVICE}"]')
    row.wait_for(state="attached", timeout=10_000)
    page.locator("#delivery summary").click()
    cells = [c.inner_text() for c in row.locator("td").all()]
    releases, promoted, failed, rate, detect = cells[1:6]
    assert int(releases) >= 2 and int(failed) >= 1 and int(promoted) + int(failed) <= int(releases), cells
    assert rate.endswith("%") and 0 < float(rate[:-1]) <= 100, cells
    assert detect != "—", cells  # the judged failure has a time to detect
    page.screenshot(path=str(artifacts / "delivery-outcomes.png"), full_page=True)
