"""A fleet on the real stack: four HAProxy backends stand in for four clusters (canary, eu-1, eu-2,
us-1), each with its own two versions of the demo service under gunicorn, scraped by a real
Prometheus under a job named after the cluster (the judge's namespace label), and Sluice's web
process and worker. The new version answers 30% errors in `bad` clusters only."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.cli.client import SluiceClient
from app.cli.demo.stack import HAProxyBackend, Process, start_gunicorn, start_haproxy, start_prometheus, start_redis
from app.cli.demo.traffic import LoadGenerator

SERVICE = "blueskygreenbuilds"
STABLE, NEW = "1.0.370", "1.0.371"
CLUSTERS = ("canary", "eu-1", "eu-2", "us-1")
WAVES = "[[canary], [eu-*], [us-1]]"
GOOD_ENV = {"DEMO_ERROR_RATE": "0", "DEMO_LATENCY_MS": "12", "DEMO_JITTER_MS": "8"}
BAD_ENV = {"DEMO_ERROR_RATE": "0.3", "DEMO_LATENCY_MS": "12", "DEMO_JITTER_MS": "8"}

CONFIG = """
prometheus: {{url: {prometheus_url}, timeout: 2s, namespace_label: job}}
applications:{applications}
policies:
  - name: demo
    interval: 1s
    window: 10s
    steps:
      - {{weight: 10, duration: 4s}}
      - {{weight: 50, duration: 4s}}
      - {{weight: 100, duration: 3s}}
    on_no_data: hold
    no_data_timeout: 30s
fleets:
  - name: everywhere
    service: {service}
    waves: {waves}
    on_failure: {on_failure}
"""
APPLICATION = """
  - name: {cluster}
    namespace: {cluster}
    router: {{type: haproxy, socket: {socket}}}
    services:
      - {{name: {service}, backend: bsgb-{cluster}, stable_version: "{stable}", policy: demo}}"""


@dataclass
class FleetStack:
    workdir: Path
    bad: frozenset[str] = frozenset({"us-1"})
    on_failure: str = "rollback"
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[Process] = field(default_factory=list)
    loads: list[LoadGenerator] = field(default_factory=list)
    frontends: dict[str, str] = field(default_factory=dict)
    haproxy_socket: str = ""
    api_url: str = ""
    config_path: Path | None = None

    def start(self, rate: float = 25.0) -> FleetStack:
        redis_proc, redis_url = start_redis(self.workdir)
        self.processes.append(redis_proc)
        ports: dict[str, dict[str, int]] = {}
        for cluster in CLUSTERS:
            ports[cluster] = {}
            for version in (STABLE, NEW):
                env = BAD_ENV if version == NEW and cluster in self.bad else GOOD_ENV
                proc, ports[cluster][version] = start_gunicorn(
                    self.workdir,
                    f"{cluster}-{version}",
                    "app.cli.demo.service:create_app()",
                    env={"DEMO_SERVICE": SERVICE, "DEMO_VERSION": version, **env},
                    threads=2,
                )
                self.processes.append(proc)
        backends = [HAProxyBackend(f"bsgb-{c}", ports[c], {STABLE: 100}) for c in CLUSTERS]
        haproxy, self.haproxy_socket, fe_ports = start_haproxy(self.workdir, backends)
        self.processes.append(haproxy)
        self.frontends = {c: f"http://127.0.0.1:{fe_ports[f'bsgb-{c}']}/" for c in CLUSTERS}
        targets = {c: [f"127.0.0.1:{p}" for p in ports[c].values()] for c in CLUSTERS}
        prom, prometheus_url = start_prometheus(self.workdir, targets, scrape_interval="1s")
        self.processes.append(prom)
        self.config_path = self.workdir / "sluice.yaml"
        applications = "".join(
            APPLICATION.format(cluster=c, socket=self.haproxy_socket, service=SERVICE, stable=STABLE) for c in CLUSTERS
        )
        self.config_path.write_text(
            CONFIG.format(
                prometheus_url=prometheus_url,
                applications=applications,
                service=SERVICE,
                waves=WAVES,
                on_failure=self.on_failure,
            )
        )
        env = {
            "SLUICE_CONFIG": str(self.config_path),
            "REDIS_URL": redis_url,
            "PROMETHEUS_URL": prometheus_url,
            "SLUICE_API_TOKEN": self.token,
            "SLUICE_LOG_LEVEL": "INFO",
        }
        web, web_port = start_gunicorn(self.workdir, "sluice-web", "app:create_app()", env=env, threads=4)
        self.processes.append(web)
        self.api_url = f"http://127.0.0.1:{web_port}"
        worker = Process("sluice-worker", [sys.executable, "-m", "app.cli.main", "worker"], self.workdir, env=env)
        self.processes.append(worker.start())
        self.loads = [LoadGenerator(url, rate=rate, threads=2).start() for url in self.frontends.values()]
        return self

    def client(self) -> SluiceClient:
        return SluiceClient(self.api_url, self.token)

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "SLUICE_URL": self.api_url, "SLUICE_API_TOKEN": self.token, "COLUMNS": "160"}

    def stop(self) -> None:
        for load in self.loads:
            load.stop()
        for proc in reversed(self.processes):
            proc.stop()
