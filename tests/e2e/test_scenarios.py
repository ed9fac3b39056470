"""The fast subset of the release scenario suite (scenarios/, `make scenarios` runs them all).

Six scenarios run concurrently on one real stack (HAProxy, Prometheus scraping every 1 s,
Redis, Sluice web + worker, the scenario service under gunicorn, the load generator) under
the `example-canary` policy (scenarios/policies/example-canary.yaml), in about 75 s. Each test
asserts that Sluice got its scenario right: the expected outcome, and for a bad version its
rollback within the detection deadline.

Before the judge compared the candidate with stable on counts (issue #10), five of these six
were judged wrong (docs/scenarios.md of that time): a warming-up candidate rolled back, a 404-only
and a timing-out candidate promoted, a crash loop promoted, 100% errors caught late.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scenarios.catalog import FAST
from scenarios.harness import PolicyRun, Result, client_text, load_policy
from scenarios.report import markdown

pytestmark = pytest.mark.e2e
POLICY = Path(__file__).resolve().parents[2] / "scenarios" / "policies" / "example-canary.yaml"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, artifacts) -> dict[str, Result]:
    workdir = tmp_path_factory.mktemp("scenarios")
    # A few seconds of stable history: the fast scenarios have no background errors, so promotion's
    # floor needs no record of stable's rate before the release (`make scenarios` gives it 3 minutes).
    run = PolicyRun(load_policy(POLICY), FAST, workdir, say=lambda _m: None, stable_history_s=5)
    done = run.run()
    (artifacts / "scenarios-fast.md").write_text(markdown({run.policy.name: done}, "pytest " + __file__, 0, {}))
    shutil.rmtree(workdir, ignore_errors=True)
    return {r.scenario.name: r for r in done}


@pytest.mark.parametrize("name", [s.name for s in FAST])
def test_scenario_is_judged_right(results: dict[str, Result], name: str) -> None:
    r = results[name]
    deadline = f" within {r.scenario.deadline_s:g}s" if r.scenario.deadline_s else ""
    assert r.right, (
        f"{name}: expected {r.scenario.expected}{deadline}, got {r.outcome}"
        f" (detection {r.detection_s}s): {r.reason} | {r.evidence} | client saw {client_text(r.client)}"
    )
