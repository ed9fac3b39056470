"""workers/liveness.py: the heartbeat file the worker's and watcher's liveness probes read. The
probes themselves run against real `sluice worker` / `sluice watcher` processes in
tests/deploy/test_manifests.py; here, the command's answers and the beat from RQ's work loop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from workers import liveness
from workers.worker import LiveWorker

ROOT = Path(__file__).resolve().parents[2]


def check(args: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_LIVENESS_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "workers.liveness", *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_check_answers_by_the_heartbeat_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check(["check", "worker", "60"], tmp_path).returncode == 1  # never beat
    monkeypatch.setenv("SLUICE_LIVENESS_DIR", str(tmp_path))
    liveness.beat("worker")
    assert check(["check", "worker", "60"], tmp_path).returncode == 0
    assert check(["check", "watcher", "60"], tmp_path).returncode == 1  # each role its own file
    old = time.time() - 61
    os.utime(tmp_path / "sluice-alive-worker", (old, old))
    late = check(["check", "worker", "60"], tmp_path)
    assert late.returncode == 1 and "61 s ago (limit 60 s)" in late.stderr
    for wrong in (["check", "worker"], ["check", "../etc", "60"], ["check", "worker", "soon"], []):
        assert check(wrong, tmp_path).returncode == 2, wrong


def test_beat_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_LIVENESS_DIR", str(tmp_path / "missing" / "folder"))
    liveness.beat("worker")  # the work goes on; the probe will say the heartbeat is missing


def test_rq_work_loop_beats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """The worker's RQ loop beats on its own (at each RQ heartbeat), not only when it starts."""
    monkeypatch.setenv("SLUICE_LIVENESS_DIR", str(tmp_path))
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("liveness", connection=connection)
    queue.enqueue("builtins.len", "abc")
    worker = LiveWorker([queue], connection=connection)
    assert not (tmp_path / "sluice-alive-worker").exists()
    assert worker.work(burst=True) is True  # ran the job
    assert check(["check", "worker", "5"], tmp_path).returncode == 0
