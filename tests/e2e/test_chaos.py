"""The fast subset of the chaos suite (chaos/, `make chaos` runs every fault): HAProxy reloaded
in the middle of a real release, through the real stack (HAProxy, Prometheus, Redis, Sluice's
web process and worker, the scenario services under gunicorn, the load generator).

The reload resets HAProxy's runtime weights to its configuration file's (stable 100%). Before
Sluice checked the router's weights on every tick, the candidate got no traffic from then on
and a good release was failed 181 s later for lack of evidence. About 60 s.
"""

from __future__ import annotations

import shutil

import pytest

from chaos.faults import FAULTS
from chaos.harness import FaultResult
from chaos.report import markdown, observed
from chaos.suite import run

pytestmark = pytest.mark.e2e
FAST = [f for f in FAULTS if f.fast]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, artifacts) -> dict[str, FaultResult]:
    workdir = tmp_path_factory.mktemp("chaos")
    done, _ = run(FAST, workdir, say=lambda _m: None)
    (artifacts / "chaos-fast.md").write_text(markdown(done, None, "pytest " + __file__, 0, "pytest"))
    shutil.rmtree(workdir, ignore_errors=True)
    return {r.fault.name: r for r in done}


@pytest.mark.parametrize("name", [f.name for f in FAST])
def test_fault_keeps_every_invariant(results: dict[str, FaultResult], name: str) -> None:
    r = results[name]
    assert r.passed, f"{name}: {observed(r)}"
    assert all(c.outcome == c.expected and c.lost == 0 and c.doubled == 0 for c in r.releases), observed(r)


def test_haproxy_reload_is_noticed_and_repaired(results: dict[str, FaultResult]) -> None:
    r = results["haproxy-reload"]
    assert dict(r.checks) == {
        "50/50 set again within 30 s of the reload": True,
        "a 'weights_drifted' event was recorded": True,
    }
    assert r.recover_s is not None
