"""The talk's stack: versions of a service as real processes, a real Prometheus scraping them, and
Sluice's worker and watcher as the processes a platform team runs (`sluice worker`, `sluice watcher`),
each calling the Kubernetes API as its own service account from deploy/rbac.yaml.

The versions are app/cli/demo/scenario_service.py under gunicorn: they export
`http_requests_total{app,version,code}` and `http_request_duration_seconds{app,version}`, as the
talk's services do.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from app.cli.demo.stack import Process, start_gunicorn, start_prometheus, wait_until
from tests.support.ci import CIRCLE_TOKEN
from tests.support.ci_fakes import FakeCircleCI, FakeSlack
from tests.support.fake_apiserver import FakeApiServer

REPO = Path(__file__).resolve().parents[2]
SERVICE = "web"
APPROVAL_JOB = "released-by-sluice"

# A short policy: one second between checks, a 10% canary long enough to see the split, then all.
CONFIG = """
prometheus: {{url: "{prometheus}", timeout: 2s}}
applications:
  - name: shop
    namespace: prod
    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s}}
    router: {{type: gateway-api}}
    services:
      - {{name: web, port: 8080, policy: talk}}
policies:
  - name: talk
    interval: 1s
    window: 5s
    judge: {{warmup: 0s}}
    steps: [{{weight: 10, duration: 8s}}, {{weight: 100, duration: 3s}}]
    checks:
      - {{name: errors, type: error_rate, max: 0.05}}
      - {{name: fast-responses, type: latency, under: 500ms, min: 0.9}}
hooks:
  # Sluice acts only in the CircleCI project its configuration names (docs/security.md).
  - {{name: approve, type: circleci_approve, project_slug: gh/acme/shop, job_name: {approval}, timeout: 2s,
      max_attempts: 3}}
  - name: cleanup-old
    type: circleci_trigger_pipeline
    project_slug: gh/acme/shop
    on: [succeeded]
    branch: main
    parameters: {{cleanup: true, version: "{{source_version}}"}}
    timeout: 2s
    max_attempts: 3
  - name: cleanup-failed
    type: circleci_trigger_pipeline
    project_slug: gh/acme/shop
    on: [failed]
    branch: main
    parameters: {{cleanup: true, version: "{{target_version}}"}}
    timeout: 2s
    max_attempts: 3
  - {{name: slack, type: slack, on: [succeeded, failed], timeout: 2s, max_attempts: 3}}
circleci: {{api_url: "{circleci}"}}
"""


@dataclass
class Versions:
    """The service's versions as running processes, scraped by a real Prometheus every second."""

    ports: dict[str, int]
    prometheus_url: str
    processes: list[Process] = field(default_factory=list)

    def counts(self, at: float) -> dict[tuple[str, str], float]:
        """(version, code) -> requests served, as Prometheus had scraped them at time `at`."""
        query = f'sum by (version, code) (http_requests_total{{app="{SERVICE}"}})'
        answer = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": query, "time": f"{at:.3f}"}, timeout=5
        ).json()
        assert answer["status"] == "success", answer
        return {(r["metric"]["version"], r["metric"]["code"]): float(r["value"][1]) for r in answer["data"]["result"]}

    def samples(self, version: str, seconds: int = 60) -> list[tuple[float, float]]:
        """(scrape time, requests served) of one version's scrapes in the last `seconds`: for messages."""
        query = f'sum by (version) (http_requests_total{{app="{SERVICE}",version="{version}"}})[{seconds}s:1s]'
        answer = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": query}, timeout=5).json()
        return [(float(t), float(v)) for r in answer["data"]["result"] for t, v in r["values"]]

    def served_between(self, since: float, until: float) -> dict[str, float]:
        """version -> requests served between the scrapes before `since` and before `until`."""
        before, after = self.counts(since), self.counts(until)
        out: dict[str, float] = {}
        for (version, _code), n in after.items():
            out[version] = out.get(version, 0.0) + n - before.get((version, _code), 0.0)
        return out


@contextmanager
def running_versions(workdir: Path, versions: dict[str, dict[str, str]]) -> Iterator[Versions]:
    """Each version (name -> its SCN_* settings) under gunicorn, and Prometheus scraping them."""
    processes: list[Process] = []
    try:
        ports = {}
        for version, settings in versions.items():
            env = {"SCN_SERVICE": SERVICE, "SCN_VERSION": version, "SCN_LATENCY_MS": "3", **settings}
            proc, ports[version] = start_gunicorn(
                workdir, f"web-{version}", "app.cli.demo.scenario_service:create_app()", env=env, threads=4
            )
            processes.append(proc)
        targets = [f"127.0.0.1:{p}" for p in ports.values()]
        prom, url = start_prometheus(workdir, {"services": targets}, scrape_interval="1s")
        processes.append(prom)
        stack = Versions(ports, url, processes)
        wait_until(lambda: len({v for v, _ in stack.counts(time.time())}) == len(versions), 30, "the first scrapes")
        yield stack
    finally:
        for proc in reversed(processes):
            proc.stop()


@contextmanager
def running_sluice(
    workdir: Path,
    api: FakeApiServer,
    redis_url: str,
    prometheus_url: str,
    circle: FakeCircleCI,
    slack: FakeSlack,
) -> Iterator[dict[str, Path]]:
    """`sluice worker` (as sluice-worker) and `sluice watcher` (as sluice-watcher); yields their configs."""
    configs: dict[str, Path] = {}
    processes: list[Process] = []
    try:
        for role in ("worker", "watcher"):
            kubeconfig = api.kubeconfig(workdir / f"kubeconfig-{role}", service_account=("sluice", f"sluice-{role}"))
            configs[role] = workdir / f"sluice-{role}.yaml"
            configs[role].write_text(
                CONFIG.format(
                    prometheus=prometheus_url,
                    kubeconfig=kubeconfig,
                    circleci=circle.base,
                    approval=APPROVAL_JOB,
                )
            )
            env = sluice_env(configs[role], redis_url, prometheus_url, circle, slack, workdir)
            args = [sys.executable, "-m", "app.cli.main", role]
            processes.append(Process(f"sluice-{role}", args, workdir, env=env).start())
        yield configs
    finally:
        for proc in processes:
            proc.stop()


def sluice_env(
    config: Path, redis_url: str, prometheus_url: str, circle: FakeCircleCI, slack: FakeSlack, workdir: Path
) -> dict[str, Any]:
    return {
        "PYTHONPATH": str(REPO),
        "SLUICE_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "PROMETHEUS_URL": prometheus_url,
        "CIRCLECI_TOKEN": CIRCLE_TOKEN,
        "CIRCLECI_API_URL": circle.base,
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "SLUICE_LIVENESS_DIR": str(workdir),
        "SLUICE_LOG_LEVEL": "INFO",
    }


def logs(workdir: Path) -> str:
    """The Sluice processes' logs, for a failing test's message."""
    out = []
    for role in ("worker", "watcher"):
        log = workdir / f"sluice-{role}.log"
        if log.exists():
            out.append(f"--- sluice {role} ---\n{log.read_text(errors='replace')[-4000:]}")
    return "\n".join(out)
