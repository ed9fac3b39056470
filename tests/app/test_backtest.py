"""`sluice backtest` on two weeks of promtool-imported history with four version changes, one bad."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.analysis.backtest import backtest, render
from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Event, Release
from tests.support.history import STEP, lean_openmetrics, two_weeks
from tests.support.prom_data import serve_history

pytestmark = pytest.mark.integration

END = 1_700_006_400  # a multiple of 60
TRAFFIC, ERAS = two_weeks(END)

CONFIG = """
prometheus: {{url: "{prom}", timeout: 10s, namespace_label: namespace}}
applications:
  - name: store
    namespace: prod
    router: {{type: haproxy, socket: /nonexistent.sock}}
    services:
      - {{name: shop, stable_version: 1.0.0, policy: canary}}
policies:
  - name: canary
    interval: 30s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
  - name: lenient
    interval: 30s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
    judge: {{errors: {{enabled: false}}}}
  - name: baked
    interval: 30s
    steps: [{{weight: 10, duration: 2m}}, {{weight: 50, duration: 2m}}, {{weight: 100, duration: 2m}}]
    bake: 30m
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    text = lean_openmetrics(TRAFFIC, END - 14 * 86400, END, STEP)
    proc, url = serve_history(tmp_path_factory.mktemp("prom"), text, import_timeout=300)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def ctx(redis_url: str, prometheus: str) -> Context:
    return Context(config=parse_config(CONFIG.format(prom=prometheus)), redis_url=redis_url)


def test_backtest_finds_every_change_and_classifies_them(ctx: Context) -> None:
    bad = next(e for e in ERAS if e.bad)
    # Sluice's own record: the bad version's release was rolled back
    rel = Release(
        id="r-bad",
        application="store",
        namespace="prod",
        service="shop",
        source_version="1.1.0",
        target_version=bad.version,
        policy="canary",
        state="failed",
        created_at=bad.start + 5,
        updated_at=bad.start + 100,
    )
    ctx.store.create(rel, "dedup-bad", Event(at=rel.created_at, type="created", message="test"))

    result = backtest(ctx, "shop", 14 * 86400, ["canary", "lenient"], until=END)
    text = render(result)
    changes = [c for c in result.changes if c.source]
    assert [(c.source, c.target) for c in changes] == [
        ("1.0.0", "1.1.0"),
        ("1.1.0", "1.2.0"),
        ("1.2.0", "1.2.1"),
        ("1.2.1", "1.3.0"),
    ], text
    for change, era in zip(changes, ERAS[1:], strict=True):
        assert abs(change.first_traffic - era.start) <= 2 * STEP, text  # found to about a scrape
        assert change.outcome == ("bad" if era.bad else "good"), text
    assert changes[1].release is not None and "release r-bad failed" in changes[1].why

    canary = {v.change.target: v for v in result.verdicts["canary"]}
    assert canary["1.2.0"].kind == "fail" and canary["1.2.0"].classification == "caught", text
    assert canary["1.2.0"].check == "errors-vs-stable"
    for version in ("1.1.0", "1.2.1", "1.3.0"):
        assert canary[version].kind == "promote" and canary[version].classification == "ok", text
    lenient = {v.change.target: v for v in result.verdicts["lenient"]}
    assert lenient["1.2.0"].classification == "MISSED REGRESSION", text
    assert "canary: 0 false rollback(s), 0 missed regression(s)" in text
    assert "lenient: 0 false rollback(s), 1 missed regression(s)" in text
    assert "| NO" in text  # the policies disagree on 1.2.0


def test_backtest_judges_the_bake_after_promotion(ctx: Context) -> None:
    """Under a policy with `bake: 30m`, each good version is judged for 30 minutes after its promotion
    against the previous version's history in Prometheus, and bakes to the end; the bad one still fails
    in the steps."""
    result = backtest(ctx, "shop", 14 * 86400, ["baked"], until=END)
    text = render(result)
    verdicts = {v.change.target: v for v in result.verdicts["baked"]}
    assert verdicts["1.2.0"].kind == "fail" and verdicts["1.2.0"].classification == "caught", text
    for version in ("1.1.0", "1.2.1", "1.3.0"):
        verdict = verdicts[version]
        assert verdict.kind == "baked" and verdict.classification == "ok", text
        assert verdict.reason.startswith("baked for 30m"), verdict.reason
        assert verdict.at is not None and verdict.at >= 6 * 60 + 30 * 60  # the steps, then the whole bake
    assert "baked: 0 false rollback(s), 0 missed regression(s)" in text
