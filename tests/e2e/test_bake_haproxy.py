"""The bake after promotion end to end, as `make demo` runs Sluice: real Redis, HAProxy, Prometheus
(scraping every second), the demo service's versions under gunicorn, Sluice's web process and
worker, steady load, and the `sluice` CLI as a person would type it.

The policy bakes for 30 s (30 minutes, compressed). A version that is promoted and degrades a few
seconds later (five minutes, compressed: its DEMO_DEGRADE_FILE appears) is reverted: HAProxy's
weights, read back from its runtime API, are on the previous version again, the load generator's
real requests reach it, CI's stand-in gets a signed `rollback` hook naming the version taken out,
and the version is known-bad with the numbers. A version that stays good finishes its bake; the
API's rollback and abort work during one; and `sluice replay` re-judges the bake on Prometheus.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.demo.run import DEMO_VERSIONS, GOOD, SERVICE, STABLE, DemoStack
from integrations.haproxy.runtime import RuntimeClient
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
LATER, LAST = "1.0.373", "1.0.374"
BAKE = 30.0


@pytest.fixture(scope="module")
def degrade_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("degrade") / "errors"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, degrade_file: Path):
    good = DEMO_VERSIONS[GOOD]
    versions = {
        STABLE: DEMO_VERSIONS[STABLE],
        GOOD: {**good, "DEMO_DEGRADE_FILE": str(degrade_file)},
        LATER: good,
        LAST: good,
    }
    stack = DemoStack(
        tmp_path_factory.mktemp("bake"),
        versions=versions,
        interval="1s",
        step="4s",
        last_step="3s",
        bake=f"{BAKE:.0f}s",
    )
    for started in running(stack):
        # The bake compares with the previous version's history over a window as long as the bake:
        # let it serve that long first, as a stable version has in production.
        time.sleep(BAKE)
        yield started


def sluice(stack: DemoStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.sluice_env(), "SLUICE_URL": stack.api_url, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], env=env, capture_output=True, text=True, timeout=200
    )


def haproxy_weights(stack: DemoStack) -> dict[str, int]:
    return {name: info["weight"] for name, info in RuntimeClient(stack.haproxy_socket).servers(SERVICE).items()}


def until_state(stack: DemoStack, release_id: str, state: str, timeout: float = 120.0) -> dict:
    client = stack.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release = client.release(release_id)
        if release["state"] == state:
            return release
        assert release["state"] in ("pending", "running", "baking"), release["reason"]
        time.sleep(0.2)
    raise AssertionError(f"release {release_id} never became {state}: {client.release(release_id)['reason']}")


def hooks_for(stack: DemoStack, release_id: str, count: int, timeout: float = 15.0) -> list[dict]:
    assert stack.receiver is not None
    deadline = time.time() + timeout
    got: list[dict] = []
    while time.time() < deadline:
        got = [r for r in stack.receiver.received if r["payload"]["release"]["release_id"] == release_id]
        if len(got) >= count:
            break
        time.sleep(0.2)
    return got


def test_a_version_that_degrades_after_promotion_is_reverted_during_its_bake(stack, degrade_file, artifacts):
    demo, load = stack
    client = demo.client()
    rid = client.deploy(SERVICE, GOOD, application="bluesky")["release"]
    baking = until_state(demo, rid, "baking")
    promoted_at = baking["bake_started_at"]
    assert baking["bake_until"] == pytest.approx(promoted_at + BAKE)
    assert haproxy_weights(demo)[GOOD] == 100
    services = client._request("GET", "/api/v1/applications")["applications"][0]["services"]
    assert services[0]["stable_version"] == GOOD  # promoted: the new stable while it bakes

    time.sleep(5)  # five minutes after promotion, compressed
    status = sluice(demo, "status", rid)
    assert status.returncode == 0 and "baking" in status.stdout and "left" in status.stdout, status.stdout
    degrade_file.write_text("0.3")  # from now on 30% of GOOD's answers are errors
    degraded_at = time.time()

    watched = sluice(demo, "watch", rid, "--interval", "0.5", "--timeout", "60")
    assert watched.returncode == 1, watched.stdout + watched.stderr  # failed
    detail = client.release(rid)
    assert detail["state"] == "failed"
    reason = detail["reason"]
    assert reason.startswith("reverted during bake: errors ") and f"vs {STABLE} before the release 0.0%" in reason
    assert f"{STABLE} is back" in reason and "(n=" in reason, reason

    # HAProxy's weights read back, and the real requests that follow them.
    weights = haproxy_weights(demo)
    assert weights[STABLE] == 100 and weights[GOOD] == 0, weights
    restored = next(e for e in reversed(detail["events"]) if e["type"] == "weights_set")
    assert restored["data"]["weights"][STABLE] == 100
    time.sleep(2)
    after = load.between(restored["at"] + 0.3, time.time())
    assert after.get(GOOD, 0) == 0 and after.get(STABLE, 0) > 20, after
    services = client._request("GET", "/api/v1/applications")["applications"][0]["services"]
    assert services[0]["stable_version"] == STABLE

    # CI's stand-in: started and succeeded at promotion, then one signed `rollback` naming the version taken out.
    hooks = hooks_for(demo, rid, 3)
    assert [(h["event"], h["verified"]) for h in hooks] == [("started", True), ("succeeded", True), ("rollback", True)]
    back = hooks[-1]["payload"]
    assert (back["release"]["source_version"], back["release"]["target_version"]) == (GOOD, STABLE)
    assert back["cleanup_version"] == GOOD

    # Known-bad, saying why; a CI retry is refused.
    listing = sluice(demo, "known-bad", SERVICE)
    assert (
        listing.returncode == 0
        and GOOD in listing.stdout
        and "reverted during its bake on bake-errors" in listing.stdout
    )

    # Replay re-judges the bake on Prometheus's stored data and reverts too (perhaps one evaluation
    # apart: a scrape that had not landed when the live tick asked is in the history now; exit 3).
    replayed = sluice(demo, "replay", rid)
    assert replayed.returncode in (0, 3), replayed.stdout + replayed.stderr
    assert "replayed: failed — recorded: failed" in replayed.stdout, replayed.stdout
    rows = replay_rows(replayed.stdout)
    recorded = [row["recorded"] for row in rows]
    replayed_decisions = [row["replayed"] for row in rows]
    assert "promote" in replayed_decisions, replayed.stdout
    assert abs(recorded.index("promote") - replayed_decisions.index("promote")) <= 1, replayed.stdout
    assert replayed_decisions[-1] == "revert" and "reverted during bake" in rows[-1]["reason"], replayed.stdout

    reaction = restored["at"] - degraded_at
    report = (
        f"bake revert: promoted {promoted_at - detail['created_at']:.1f}s after the announcement; degraded "
        f"{degraded_at - promoted_at:.1f}s after promotion; HAProxy back on {STABLE} {reaction:.1f}s after the "
        f"first bad answer\n{reason}\n\n$ sluice status {rid}\n{sluice(demo, 'status', rid).stdout}\n"
        f"$ sluice known-bad {SERVICE}\n{listing.stdout}\n$ sluice replay {rid}\n{replayed.stdout}\n"
    )
    (artifacts / "bake-revert.txt").write_text(report)
    print(report)
    assert reaction < BAKE  # caught within the bake, not at its end


REPLAY_ROW = re.compile(r"^\s+\+\d+s\s+\d+\s+(?P<recorded>\S+)\s+(?P<replayed>\S+)\s+[=≠]\s+(?P<reason>.*)$")


def replay_rows(output: str) -> list[dict[str, str]]:
    """The evaluation rows of `sluice replay`'s table: recorded and replayed decision, replayed reason."""
    return [match.groupdict() for line in output.splitlines() if (match := REPLAY_ROW.match(line))]


def test_rollback_and_abort_work_during_a_bake_and_a_good_version_finishes_it(stack):
    demo, _load = stack
    client = demo.client()
    # Rollback during the bake: no force needed, the previous version is back, the bake ends.
    first = client.deploy(SERVICE, LATER, application="bluesky")["release"]
    until_state(demo, first, "baking")
    rolled = sluice(demo, "rollback", SERVICE, "--by", "alice", "--reason", "checkout slow")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert haproxy_weights(demo)[STABLE] == 100
    ended = client.release(first)
    assert ended["state"] == "succeeded" and ended["reason"].startswith("bake ended early: abort by sluice: superseded")

    # Abort during the bake: the bake ends, the new version stays stable.
    second = client.deploy(SERVICE, LAST, application="bluesky")["release"]
    until_state(demo, second, "baking")
    aborted = sluice(demo, "abort", second, "--reason", "enough")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    record = client.release(second)
    assert record["state"] == "succeeded" and record["reason"].startswith("bake ended early: abort by")
    assert haproxy_weights(demo)[LAST] == 100

    # A good version bakes to the end: succeeded, saying so, with the previous version left warm.
    third = client.deploy(SERVICE, LATER, application="bluesky", force=True, by="test", reason="again")["release"]
    baking = until_state(demo, third, "baking")
    done = until_state(demo, third, "succeeded", timeout=BAKE + 30)
    assert (
        done["reason"].startswith("baked for 3") and f"no evidence that {LATER} is worse than {LAST}" in done["reason"]
    )
    assert done["finished_at"] >= baking["bake_until"]
    assert haproxy_weights(demo)[LATER] == 100
    assert [e["type"] for e in done["events"]].count("baked") == 1
