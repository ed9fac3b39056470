"""Footprint of `sluice watcher`: resident memory idle, and watching N Deployments.

The Kubernetes API is the fake API server the tests use (real HTTP, list + chunked watch),
so the watcher runs unchanged; only the cluster is simulated.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from app.cli.demo.stack import Process, start_redis
from benchmarks.common import rss_mib
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import Sim

REPO = Path(__file__).resolve().parents[1]


def _config(kubeconfig: Path, n: int) -> str:
    services = "\n".join(
        f"      - {{name: svc-{i:05d}, port: 8080, policy: p, stable_version: 1.0.0}}" for i in range(max(n, 1))
    )
    return f"""
applications:
  - name: bench
    namespace: prod
    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s}}
    router: {{type: gateway-api}}
    services:
{services}
policies:
  - name: p
    steps: [{{weight: 10, duration: 1h}}, {{weight: 100}}]
"""


def measure(workdir: Path, n: int, settle: float = 6.0) -> float:
    """RSS (MiB) of a watcher that has listed and is watching n Deployments (one per service)."""
    workdir.mkdir(parents=True, exist_ok=True)
    api = FakeApiServer().start()
    procs: list[Process] = []
    try:
        sim = Sim(api, "prod")
        for i in range(n):
            sim.deployment(f"svc-{i:05d}", "1.0.0")  # the stable version: nothing to release
        kubeconfig = api.kubeconfig(workdir / "kubeconfig")
        config = workdir / "sluice.yaml"
        config.write_text(_config(kubeconfig, n))
        redis_proc, redis_url = start_redis(workdir)
        procs.append(redis_proc)
        env = {
            "SLUICE_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "SLUICE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
        watcher = Process(f"watcher-{n}", [sys.executable, "-m", "app.cli.main", "watcher"], workdir, env=env).start()
        procs.append(watcher)
        time.sleep(settle)
        if watcher.proc is None or watcher.proc.poll() is not None:
            raise RuntimeError(f"the watcher exited: {watcher.log.read_text()[-1000:]}")
        return rss_mib([watcher.proc.pid])
    finally:
        for p in reversed(procs):
            p.stop()
        api.stop()
