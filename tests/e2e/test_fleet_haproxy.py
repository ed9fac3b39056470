"""A fleet end to end on the real stack, driven from the CLI as a person would: one announcement of
blueskygreenbuilds 1.0.371 releases it over four HAProxy backends standing in for clusters, in three
waves ([canary], [eu-1, eu-2], [us-1]); the new version answers 30% errors in us-1 only.

What a person checks: `sluice fleet watch` follows the waves and exits 1; HAProxy's weights, read back
from its runtime API, put every backend back on 1.0.370 (the waves done are rolled back); the real
requests of each cluster's load reached 1.0.371 only while its wave ran; the fleet's record shows each
wave and member. The CLI's output and the measured times are kept in test-artifacts/fleet-cli.txt."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from integrations.haproxy.runtime import RuntimeClient
from tests.support.fleet_stack import CLUSTERS, NEW, SERVICE, STABLE, FleetStack

pytestmark = pytest.mark.e2e


def sluice(stack: FleetStack, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for_scrapes(stack: FleetStack, timeout: float = 30.0) -> None:
    """Until Prometheus has scraped all eight processes twice (rates need two points)."""
    text = (stack.config_path or Path()).read_text()
    url = next(line.split("url: ")[1].split(",")[0] for line in text.splitlines() if line.startswith("prometheus:"))
    query = f'count(count_over_time(http_requests_total{{app="{SERVICE}",code="200"}}[1m]) >= 2)'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()["data"]["result"]
        if result and float(result[0]["value"][1]) >= 2 * len(CLUSTERS):
            return
        time.sleep(0.5)
    raise AssertionError("Prometheus did not scrape every cluster's versions")


def weights(stack: FleetStack, cluster: str) -> dict[str, int]:
    servers = RuntimeClient(stack.haproxy_socket).servers(f"bsgb-{cluster}")
    return {name: info["weight"] for name, info in servers.items()}


def test_three_waves_one_failing_rolled_back_from_the_cli(tmp_path: Path, artifacts: Path) -> None:
    stack = FleetStack(tmp_path)
    try:
        stack.start()
        wait_for_scrapes(stack)
        announced = time.time()
        answer = stack.client().deploy(SERVICE, NEW)  # what CI sends: no application, the fleet's service
        fleet_id = answer["fleet"]
        assert answer["status"] == "started" and fleet_id.startswith("f-")

        watched = sluice(stack, "fleet", "watch", fleet_id, "--interval", "0.5", "--timeout", "360")
        ended = time.time()
        shown = sluice(stack, "fleet", "show", fleet_id)
        listed = sluice(stack, "fleet", "list")
        fleet = stack.client().fleet(fleet_id)

        assert watched.returncode == 1, watched.stdout + watched.stderr  # rolled back: a failure for CI
        assert fleet["state"] == "rolled_back", fleet["reason"]
        assert [w["state"] for w in fleet["waves"]] == ["succeeded", "succeeded", "failed"]
        assert fleet["reason"].startswith("wave 3 failed: us-1: release")
        for cluster in CLUSTERS:  # HAProxy, read back: every cluster on the previous version
            assert weights(stack, cluster)[STABLE] == 100 and weights(stack, cluster)[NEW] == 0, cluster
        rolled = {m["application"]: m["rolled_back_by"] for w in fleet["waves"] for m in w["members"]}
        assert all(rolled[c] for c in ("canary", "eu-1", "eu-2")) and rolled["us-1"] is None
        # Wave after wave: each cluster's real requests reached the new version only once its wave began.
        for number, wave in enumerate(fleet["waves"], start=1):
            for m in wave["members"]:
                load = stack.loads[CLUSTERS.index(m["application"])]
                before = load.between(announced, wave["started_at"] - 0.5)
                during = load.between(wave["started_at"], wave["finished_at"])
                assert before.get(NEW, 0) == 0, (number, m["application"], before)
                assert during.get(NEW, 0) > 0, (number, m["application"], during)
        assert f"{fleet_id}" in listed.stdout and "rolled_back" in shown.stdout

        took = {w["number"]: w["duration_seconds"] for w in fleet["waves"]}
        note = [
            f"$ sluice fleet watch {fleet_id}   (exit {watched.returncode})",
            watched.stdout.rstrip(),
            f"$ sluice fleet show {fleet_id}",
            shown.stdout.rstrip(),
            "",
            f"measured: announcement to fleet end {ended - announced:.1f}s; "
            + ", ".join(f"wave {n} {s:.1f}s" for n, s in took.items())
            + f"; fleet record {fleet['duration_seconds']:.1f}s (created to rolled back)",
        ]
        (artifacts / "fleet-cli.txt").write_text("\n".join(note) + "\n")
    finally:
        stack.stop()
