"""The dashboard's Fleets card in a real browser (headless Chromium): a three-wave fleet whose last
wave failed is shown as one thing, each wave with its state and each member with its release's state
(linked to it) and whether it was rolled back.

The web app is the real one over real HTTP (werkzeug in a thread) on a real Redis; the fleet was run
by the scheduler and a real RQ worker, with in-memory routers per cluster (tests/support/fleets.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.context import Context, set_context
from tests.support.browser import browser_page, served_app
from tests.support.ci import CIRCLE_TOKEN
from tests.support.ci_fakes import FakeCircleCI
from tests.support.fleets import FLEET_TOKEN, ClusterPrometheus, announce, fleet_context, routers, run_until_finished

pytestmark = pytest.mark.e2e


@pytest.fixture
def ctx(redis_url: str, circle: FakeCircleCI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("CIRCLECI_TOKEN", CIRCLE_TOKEN)
    monkeypatch.setenv("SLUICE_API_TOKEN", FLEET_TOKEN)
    prom = ClusterPrometheus().start()
    prom.bad = {"us-1"}
    context = fleet_context(redis_url, circle, prom.url)
    routers(context)
    yield context
    set_context(None)
    prom.stop()
    context.prometheus.close()
    context.store.r.close()


@pytest.fixture
def web(ctx: Context) -> Iterator[str]:
    with served_app() as url:
        yield url


@pytest.fixture
def page() -> Iterator[object]:
    with browser_page(viewport={"width": 1400, "height": 1000}, console_errors=True) as pg:
        yield pg


def test_the_fleets_card_shows_each_wave_and_member(ctx: Context, circle: FakeCircleCI, web: str, page, artifacts):  # type: ignore[no-untyped-def]
    answer, _ = announce(circle)
    fleet = run_until_finished(ctx, answer["fleet"])
    assert fleet.state == "rolled_back"

    page.goto(f"{web}/login?next=/")
    page.fill("#login-token", FLEET_TOKEN)
    page.locator('#login button[type="submit"]').click()
    card = page.locator(f'.fleet[data-fleet="{fleet.id}"]')
    card.wait_for(timeout=15_000)

    assert card.locator(".fleet-head .state").first.inner_text().lower() == "rolled back"
    assert "wave 3 failed: us-1" in card.locator(".fleet-reason").inner_text()
    waves = card.locator(".fleet-wave")
    assert waves.count() == 3
    states = [waves.nth(i).locator(".fleet-wave-head .state").inner_text().lower() for i in range(3)]
    assert states == ["succeeded", "succeeded", "failed"]
    members = {
        m.get_attribute("data-application"): (m.get_attribute("data-state"), m.inner_text().lower())
        for m in card.locator(".fleet-member").all()
    }
    assert members["us-1"][0] == "failed" and "rolled back" not in members["us-1"][1]
    assert all(members[a][0] == "succeeded" and "rolled back" in members[a][1] for a in ("canary", "eu-1", "eu-2"))
    link = card.locator('.fleet-member[data-application="us-1"] a')
    assert link.get_attribute("href") == f"/releases/{fleet.waves[2].releases['us-1']}"
    page.screenshot(path=str(artifacts / "dashboard-fleet.png"), full_page=True)
