"""Sluice's store through Redis Sentinel (Debian's redis-server and redis-sentinel, for real): a master,
a replica and 3 sentinels on loopback. Releases are stored and read through `redis+sentinel://`, a
SIGKILLed master is replaced by its replica with nothing lost, and `sluice doctor` reports what the
sentinels see, without ever printing the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.doctor.checks import run_doctor
from app.release.intake import start_release
from tests.support.fakes import FakePrometheus, FakeRouter, config_text
from tests.support.sentinel import SentinelStack

pytestmark = pytest.mark.integration
PASSWORD = "sentinel-test-Pa55word"


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelStack]:
    stack = SentinelStack(tmp_path, password=PASSWORD)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def ctx(sentinels: SentinelStack, prom: FakePrometheus, router: FakeRouter) -> Iterator[Context]:
    context = Context(config=parse_config(config_text()), redis_url=sentinels.url(), prometheus_url=prom.url)
    context._routers["shop"] = router
    yield context
    context.prometheus.close()
    context.store.r.close()


def test_releases_are_stored_through_sentinel_and_survive_a_failover(ctx: Context, sentinels: SentinelStack) -> None:
    first = start_release(ctx, "web", "1.1.0", trigger="webhook").release
    again = start_release(ctx, "web", "1.1.0", trigger="webhook").release
    assert again.id == first.id  # the dedup claim is in the master
    events_before = [(e.type, e.at) for e in ctx.store.events(first.id)]
    assert [t for t, _ in events_before] == ["created", "duplicate"]

    old = sentinels.kill_master()
    # The next call rides out the failover (the client asks the sentinels again and retries).
    later = start_release(ctx, "web", "1.1.0", trigger="webhook").release
    new = sentinels.wait_for_new_master(old)
    assert new != old
    assert later.id == first.id, "the promoted replica must hold the release and its dedup claim"
    stored = ctx.store.get(first.id)
    assert stored is not None and stored.target_version == "1.1.0"
    assert [(e.type, e.at) for e in ctx.store.events(first.id)][:2] == events_before
    assert [e.type for e in ctx.store.events(first.id)] == ["created", "duplicate", "duplicate"]
    assert ctx.store.list_releases()[1] == 1


def test_doctor_reports_the_sentinel_view_and_persistence(ctx: Context, sentinels: SentinelStack) -> None:
    findings = {f.name: f for f in run_doctor(ctx)}
    view, server = findings["redis sentinel"], findings["redis"]
    master = f"127.0.0.1:{sentinels.master_port()}"
    replica = next(f"127.0.0.1:{port}" for _, port in sentinels.servers[1:])
    assert view.status == "pass", view
    assert f"master 'sluice' at {master}, named by 3 of 3 sentinels (quorum 2)" in view.detail
    assert f"replicas: {replica} (AOF)" in view.detail
    assert server.status == "pass" and "persistent (AOF)" in server.detail
    assert all(PASSWORD not in f.detail + f.fix for f in findings.values())

    sentinels.kill_master()
    sentinels.wait_for_new_master(int(master.rsplit(":", 1)[1]))
    after = {f.name: f for f in run_doctor(ctx)}["redis sentinel"]
    assert after.status == "warn" and f"at {replica}" in after.detail
    assert "no healthy replica: a failover has nothing to promote" in after.detail


def test_the_doctor_command_with_a_sentinel_url_never_prints_the_password(
    sentinels: SentinelStack, tmp_path: Path
) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(config_text())
    env = {**os.environ, "SLUICE_CONFIG": str(config), "REDIS_URL": sentinels.url(), "NO_COLOR": "1"}
    env.pop("REDIS_SENTINELS", None)
    for args in (["doctor"], ["doctor", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args], env=env, capture_output=True, text=True, timeout=120
        )
        out = done.stdout + done.stderr
        assert "redis sentinel" in out and "named by 3 of 3 sentinels" in out, out[-2000:]
        assert PASSWORD not in out


def test_sentinels_named_in_the_environment_find_the_master(sentinels: SentinelStack, tmp_path: Path) -> None:
    """REDIS_SENTINELS + REDIS_SENTINEL_MASTER + REDIS_PASSWORD instead of a URL; a wrong password is
    a clear failure that does not echo it."""
    config = tmp_path / "sluice.yaml"
    config.write_text(config_text())
    hosts = ",".join(f"127.0.0.1:{port}" for _, port in sentinels.sentinel_procs)
    base = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env = {**base, "SLUICE_CONFIG": str(config), "REDIS_SENTINELS": hosts, "REDIS_SENTINEL_MASTER": "sluice"}
    env["NO_COLOR"] = "1"
    good = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "doctor", "--json"],
        env={**env, "REDIS_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"redis"' in good.stdout and "persistent (AOF)" in good.stdout, good.stdout[-2000:] + good.stderr[-2000:]
    wrong = "not-the-" + PASSWORD
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "doctor"],
        env={**env, "REDIS_PASSWORD": wrong},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "cannot reach Redis" in bad.stdout, bad.stdout[-2000:]
    assert wrong not in bad.stdout + bad.stderr and PASSWORD not in bad.stdout + bad.stderr


def test_sentinels_with_a_password_of_their_own(tmp_path: Path) -> None:
    """Sentinels with `requirepass`: REDIS_SENTINEL_PASSWORD reaches them; without it doctor fails and
    says why; neither password is ever printed."""
    own = "sentinels-own-Pa55"
    stack = SentinelStack(tmp_path / "redis", password=PASSWORD, sentinel_password=own)
    try:
        stack.start()
        config = tmp_path / "sluice.yaml"
        config.write_text(config_text())
        base = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        env = {**base, "SLUICE_CONFIG": str(config), "REDIS_URL": stack.url(), "NO_COLOR": "1"}

        def doctor(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "app.cli.main", "doctor", "--json"],
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=120,
            )

        good = doctor({"REDIS_SENTINEL_PASSWORD": own})
        assert "named by 3 of 3 sentinels" in good.stdout and "persistent (AOF)" in good.stdout, good.stdout
        bad = doctor({})
        finding = next(f for f in json.loads(bad.stdout) if f["name"] == "redis sentinel")
        assert bad.returncode == 1 and finding["status"] == "fail", bad.stdout
        assert "no sentinel names a master for 'sluice' that is up (0 of 3 sentinels answered)" in finding["detail"]
        assert finding["detail"].count("refused the password (set REDIS_SENTINEL_PASSWORD") == 3, finding
        for out in (good.stdout + good.stderr, bad.stdout + bad.stderr):
            assert PASSWORD not in out and own not in out
    finally:
        stack.stop()
