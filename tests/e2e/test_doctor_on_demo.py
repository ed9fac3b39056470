"""`sluice doctor` on examples/sluice.yaml against the demo stack (real Redis, HAProxy, Prometheus,
the demo service under gunicorn, with load), as a new user would run it before a first release.

The example names HAProxy's runtime socket at its usual system path, /run/haproxy/admin.sock; the
demo's HAProxy runs unprivileged in a temporary folder with its socket there, and nothing in the
environment overrides `router.socket` (PROMETHEUS_URL does override `prometheus.url`, as the
example says). So, as written, doctor fails on exactly that one line and says how to fix it; with
only the socket path replaced by the demo's, every check passes and doctor exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.demo.run import SERVICE, STABLE, DemoStack, LoadGenerator

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sluice.yaml"
SYSTEM_SOCKET = "/run/haproxy/admin.sock"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    demo = DemoStack(tmp_path_factory.mktemp("doctor-demo"))
    load = None
    try:
        demo.start(say=lambda _m: None)
        load = LoadGenerator(demo.frontend_url, rate=40).start()
        demo.wait_for_scrapes()
        yield demo
    finally:
        if load:
            load.stop()
        demo.stop()


def doctor(stack: DemoStack, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.sluice_env(), "SLUICE_CONFIG": str(config), "NO_COLOR": "1", "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "doctor", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_example_as_written_fails_only_on_the_system_socket_path(stack: DemoStack) -> None:
    done = doctor(stack, EXAMPLE, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    findings = json.loads(done.stdout)
    failed = [f for f in findings if f["status"] != "pass"]
    assert [f["name"] for f in failed] == [f"bluesky/{SERVICE} router"], failed
    assert SYSTEM_SOCKET in failed[0]["detail"] and "router.socket" in failed[0]["fix"]


def test_the_example_passes_every_check_against_the_demo_stack(stack: DemoStack, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert text.count(SYSTEM_SOCKET) == 2  # the setting and its comment
    config = tmp_path / "sluice.yaml"
    config.write_text(text.replace(SYSTEM_SOCKET, stack.haproxy_socket))
    changed = [(a, b) for a, b in zip(text.splitlines(), config.read_text().splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and "socket:" in changed[0][0]  # the socket line, and nothing else

    done = doctor(stack, config, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    findings = json.loads(done.stdout)
    assert all(f["status"] == "pass" for f in findings), findings
    names = {f["name"] for f in findings}
    assert {
        "redis",
        "prometheus",
        f"bluesky/{SERVICE} metrics",
        f"bluesky/{SERVICE} latency buckets",
        f"bluesky/{SERVICE} check 'p99' (careful)",
        f"bluesky/{SERVICE} router",
        "hook ci-webhook",
    } <= names, names
    router = next(f for f in findings if f["name"] == f"bluesky/{SERVICE} router")
    assert f"{STABLE} 100%" in router["detail"]

    # The checklist a person reads: every line ok, and the tally says so.
    printed = doctor(stack, config)
    assert printed.returncode == 0
    lines = printed.stdout.strip().splitlines()
    assert lines[-1] == f"{len(findings)} checks: 0 failed, 0 warning(s)", printed.stdout
    assert all(line.startswith("✔") for line in lines[:-1]), printed.stdout
