"""The demo's segment step as the on-call engineer sees it, in headless Chromium (issue 23):
a check waiting for evidence (the candidate's warm-up) is drawn as waiting, not failing; the
step is named by its segment, not "0%"; the charts' time labels do not overlap."""

from __future__ import annotations

import pytest

from app.cli.demo.run import GOOD, SERVICE, DemoStack, LoadGenerator
from tests.web.test_dashboard_browser import browser, open_logged_in, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e
SEGMENT = "segment header User-Agent ~ /Chrome/"

# Every chart's x-axis labels as drawn: [left, right] in CSS pixels, with uPlot's own text metrics.
LABEL_SPANS = """() => [...window.SluiceDashboard.page.charts.values()].map(({ plot }) => {
  const ax = plot.axes[0], ctx = plot.ctx;
  ctx.font = ax.font[0];
  return (ax._values || []).map((text, i) => {
    const x = plot.valToPos(ax._splits[i], "x"), w = ctx.measureText(String(text)).width / devicePixelRatio;
    return [x - w / 2, x + w / 2];
  });
})"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    demo = DemoStack(tmp_path_factory.mktemp("seg"), segment=True, step="30s", interval="2s")
    load = None
    try:  # as tests.support.demo_stack.running, with a quarter of the requests from "Chrome"
        demo.start(say=lambda _m: None)
        load = LoadGenerator(demo.frontend_url, rate=40, segment_every=4).start()
        demo.wait_for_scrapes()
        yield demo, load
    finally:
        if load:
            load.stop()
        demo.stop()


def test_the_segment_step_waits_in_amber_is_named_by_its_segment_and_labels_do_not_overlap(stack, page, artifacts):  # noqa: F811
    demo_stack, _load = stack
    rid = demo_stack.client().deploy(SERVICE, GOOD, application="bluesky")["release"]
    open_logged_in(page, demo_stack, "/")
    row = page.locator(f'tr[data-release="{rid}"]')
    row.wait_for(timeout=10_000)
    page.wait_for_function(f"() => document.querySelector('tr[data-release=\"{rid}\"]').innerText.includes('segment')",
                           timeout=20_000)  # fmt: skip
    assert f"1 · {SEGMENT}" in row.inner_text() and "1 · 0%" not in row.inner_text()
    page.screenshot(path=str(artifacts / "segment-list.png"))

    page.goto(f"{demo_stack.api_url}/releases/{rid}")
    page.wait_for_selector('body[data-state="running"][data-step="1"]', timeout=15_000)
    # The candidate's first 15 s (judge.warmup): its latency check waits for evidence.
    card = page.locator('.check[data-check="fast-responses"]')
    page.wait_for_function(
        "() => { const c = document.querySelector('.check[data-check=\"fast-responses\"]');"
        " return c && +c.dataset.points >= 1 && c.querySelector('.verdict-badge.insufficient'); }",
        timeout=20_000,
    )
    classes = card.get_attribute("class") or ""
    assert "waiting" in classes and "failing" not in classes, classes
    assert card.locator(".verdict-badge").inner_text().lower() == "waiting"
    red = "rgb(200, 40, 30)"
    assert card.locator(".ch-last").evaluate("e => getComputedStyle(e).color") != red
    assert card.evaluate("e => getComputedStyle(e).borderTopColor") != red
    assert SEGMENT in page.locator("#verdict .headline").inner_text()
    assert "0% of traffic" not in page.locator("#verdict .headline").inner_text()
    page.screenshot(path=str(artifacts / "segment-waiting.png"), full_page=True)

    # Let the charts span a minute or so, then no two time labels may overlap.
    page.wait_for_selector('body[data-step="2"]', timeout=60_000)
    page.wait_for_timeout(8_000)
    for spans in page.evaluate(LABEL_SPANS):
        assert len(spans) >= 2
        for (_, right), (left, _) in zip(spans, spans[1:], strict=False):
            assert right + 4 <= left, spans
    page.screenshot(path=str(artifacts / "segment-charts.png"), full_page=True)
