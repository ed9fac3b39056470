"""The replay and backtest pages in a real browser (headless Chromium), as a person uses them.

Sluice's web app is served over real HTTP (werkzeug, in a thread) on a real Redis and a real
Prometheus with promtool-imported history; RQ's SimpleWorker runs the jobs the pages ask for. A
failed release's page offers Replay; under a looser policy the replay page marks the decisions
that differ and draws the same per-check charts as a live release page. The backtest form of a
service leads to the table, where the two policies' disagreement is marked. Screenshots go to
test-artifacts/ (replay-page.png, backtest-page.png).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.context import Context
from app.web import create_app
from tests.app.test_replay import run_live
from tests.support.job_history import T0, job_context, job_prometheus
from tests.web.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS
from tests.web.test_jobs_api import run_queued_jobs

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.sync_api")

TOKEN = "jobs-dashboard-read-token-1f3a"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with job_prometheus(tmp_path_factory.mktemp("prom")) as url:
        yield url


@pytest.fixture
def ctx(redis_url: str, prometheus: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("SLUICE_READ_TOKEN", TOKEN)
    with job_context(redis_url, prometheus) as context:
        yield context


@pytest.fixture
def base_url(ctx: Context) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def console_errors() -> list[str]:
    """Script errors and failed loads the page logs: none, but those a test expects (and removes)."""
    return []


@pytest.fixture
def page(base_url: str, console_errors: list[str]):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-system-packages.sh installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        pg = context.new_page()
        errors = console_errors
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        pg.goto(f"{base_url}/login")
        pg.fill("#login-token", TOKEN)
        pg.locator('#login button[type="submit"]').click()
        pg.wait_for_url(f"{base_url}/")
        yield pg
        browser.close()
        assert not errors, errors


def test_replay_a_failed_release_from_its_page(
    ctx: Context, base_url: str, page, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = run_live(ctx, monkeypatch, "1.0.2", T0)
    assert live.state == "failed"
    page.goto(f"{base_url}/releases/{live.id}")
    page.wait_for_selector('body[data-state="failed"]', timeout=10_000)
    box = page.locator("#replay-box")
    box.wait_for(state="visible", timeout=10_000)
    page.wait_for_selector('#replay-policy option[value="lenient"]', state="attached", timeout=10_000)
    page.select_option("#replay-policy", "lenient")
    page.locator("#replay-button").click()
    page.wait_for_url("**/replays/replay-*", timeout=10_000)
    page.wait_for_selector('body[data-status="queued"]', timeout=10_000)

    run_queued_jobs(ctx)
    page.wait_for_selector('body[data-status="done"]', timeout=15_000)
    job_id = page.url.rsplit("/", 1)[1]
    report = ctx.store.jobs.get(job_id).result  # type: ignore[union-attr]
    assert report is not None and not report["same"]

    headline = page.locator("#j-verdict .headline").inner_text()
    assert f"{report['differences']} decision" in headline and "differ" in headline
    differing = page.locator("#decisions tbody tr.differs")
    assert differing.count() == report["differences"] >= 1
    first = differing.first.inner_text()
    assert "fail" in first and "≠" in first
    # The same per-check chart as a live release's page, one dot per replayed evaluation.
    name = report["evaluations"][0]["name"]
    chart = page.locator(f'.check[data-check="{name}"]')
    chart.locator("canvas").first.wait_for(timeout=10_000)
    points = [e for e in report["evaluations"] if e["name"] == name]
    assert chart.get_attribute("data-points") == str(len(points))
    assert page.locator(".check").count() == len({e["name"] for e in report["evaluations"]})
    assert "policy lenient" in page.locator("#j-meta").inner_text()
    assert page.locator("#j-release a").get_attribute("href") == f"/releases/{live.id}"
    # Every evaluation on request, not only the decisions.
    shown = page.locator("#decisions tbody tr").count()
    page.check("#all-steps")
    assert page.locator("#decisions tbody tr").count() == len(report["steps"]) >= shown
    page.uncheck("#all-steps")
    page.screenshot(path=str(artifacts / "replay-page.png"), full_page=True)


def test_backtest_a_service_from_its_form(
    ctx: Context, base_url: str, page, artifacts: Path, console_errors: list[str]
) -> None:
    page.goto(f"{base_url}/backtests")
    row = page.locator('tr.backtest-form[data-service="cart"]')
    row.wait_for(timeout=10_000)
    row.locator("[name=since]").fill("45d")
    row.locator(".run-backtest").click()
    page.wait_for_function(
        "() => document.querySelector('tr[data-service=\"cart\"] .msg').textContent.includes('at most 30d')"
    )
    assert console_errors == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
    console_errors.clear()  # the refusal the form shows, as expected
    row.locator("[name=since]").fill("2d")
    row.locator("[name=compare]").select_option("steady-lenient")
    row.locator(".run-backtest").click()
    page.wait_for_url("**/backtests/backtest-*", timeout=10_000)

    run_queued_jobs(ctx)
    page.wait_for_selector('body[data-status="done"]', timeout=15_000)
    rows = page.locator("#backtest tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("data-target") for i in range(3)] == ["1.1.0", "1.2.0", "1.2.1"]
    bad = page.locator('#backtest tbody tr[data-target="1.2.0"]')
    assert "differs" in (bad.get_attribute("class") or "")
    text = bad.inner_text()
    assert "caught" in text and "MISSED REGRESSION" in text and "errors-vs-stable" in text and "NO" in text
    assert "steady-lenient: 0 false rollbacks, 1 missed regression" in page.locator("#j-verdict").inner_text()
    headers = page.locator("#backtest thead").text_content() or ""
    assert "steady decides" in headers and "steady-lenient decides" in headers
    page.screenshot(path=str(artifacts / "backtest-page.png"), full_page=True)
