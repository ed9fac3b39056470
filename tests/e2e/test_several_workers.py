"""Several workers at once (issue #21): four real `sluice worker` processes, each with its standby
scheduler, on one Redis run 60 releases while workers are SIGKILLed at random and restarted and an
operator aborts some. From Redis's records afterwards: every release decided once, every step's
weights applied once, every hook delivery recorded once and received (chaos/swarm_checks.py says
exactly what is asserted and why). Prometheus and the router are stubs (chaos/swarm.py); the same
fault on the real stack is `several-workers-under-kills` in `make chaos`. About a minute.
"""

from __future__ import annotations

import json

import pytest

from chaos.swarm import Plan, run
from chaos.swarm_checks import SwarmResult, as_dict

pytestmark = pytest.mark.e2e
# A SIGKILL every 1.5-4 s: the run lasts 30-40 s, and the assertions below need at least four kills,
# two of them of the leading scheduler's worker, however fast the workers are.
PLAN = Plan(releases=60, workers=4, kill_every=(1.5, 4.0))


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, artifacts) -> SwarmResult:
    done = run(PLAN, tmp_path_factory.mktemp("swarm"), say=lambda _m: None)
    (artifacts / "several-workers.json").write_text(json.dumps(as_dict(done) | {"problems": done.problems}))
    return done


def test_every_release_decided_once_each_step_applied_once_each_hook_delivered_once(result: SwarmResult) -> None:
    assert result.settled, result.summary()
    assert result.problems == [], result.summary()
    # Every release is accounted for: promoted, or aborted by the operator (whose aborts were taken).
    assert sum(result.outcomes.values()) == PLAN.releases
    assert set(result.outcomes) <= {"succeeded", "aborted"}, result.summary()
    assert result.outcomes["succeeded"] >= PLAN.releases // 2, result.summary()


def test_the_workers_were_really_killed_and_schedulers_took_over(result: SwarmResult) -> None:
    # Not a quiet run: workers died while releases were in flight, and with them scheduler leaders.
    assert result.kills >= 4, result.summary()
    assert result.leader_kills >= 2, result.summary()
    # The first lead, then a standby (or the restarted worker) leading after each leader's death.
    assert result.leader_takeovers >= result.leader_kills, result.summary()
    # A promoted release: started, two steps passed, succeeded; an aborted one at least its end.
    assert result.deliveries >= 4 * result.outcomes["succeeded"] + result.outcomes["aborted"], result.summary()
