"""`DemoStack`: everything `sluice demo` runs (Redis, the demo service's versions under gunicorn,
HAProxy, Prometheus, a stand-in CI, Sluice's web process and a worker), on loopback in a temporary
folder, startable and stoppable as one; the e2e tests use it too."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from app.cli.client import SluiceClient
from app.cli.demo.receiver import WebhookReceiver
from app.cli.demo.stack import (
    HAProxyBackend,
    Process,
    start_gunicorn,
    start_haproxy,
    start_prometheus,
    start_redis,
)
from integrations.haproxy.segments import SegmentMap

SERVICE = "blueskygreenbuilds"
STABLE, GOOD, BAD = "1.0.370", "1.0.371", "1.0.372"
DEMO_VERSIONS = {
    STABLE: {"DEMO_ERROR_RATE": "0", "DEMO_LATENCY_MS": "15", "DEMO_JITTER_MS": "10"},
    GOOD: {"DEMO_ERROR_RATE": "0", "DEMO_LATENCY_MS": "12", "DEMO_JITTER_MS": "10"},
    BAD: {"DEMO_ERROR_RATE": "0.3", "DEMO_LATENCY_MS": "15", "DEMO_JITTER_MS": "10"},
}

CONFIG_TEMPLATE = """
prometheus:
  url: {prometheus_url}
  timeout: 2s
applications:
  - name: bluesky
    namespace: default
    router: {{type: haproxy, socket: {socket}{segment_maps}}}
    services:
      - name: {service}
        backend: {service}
        stable_version: "{stable}"
        policy: demo
policies:
  - name: demo
    interval: {interval}
    window: 10s
    steps:{segment_step}
      - {{weight: 10, duration: {step}}}
      - {{weight: 50, duration: {step}}}
      - {{weight: 100, duration: {last_step}}}
    tolerance: 0{bake_line}
    on_no_data: hold
    no_data_timeout: 30s
    checks:
      - {{name: fast-responses, type: latency, under: 500ms, min: 0.9}}
      - {{name: traffic, type: request_rate, min: 10}}
      - {{name: errors, type: error_rate, max_over_stable: 0.01}}
hooks:
  - name: ci
    type: webhook
    on: [started, succeeded, failed, aborted, rollback]
    url: {receiver_url}
    secret_env: SLUICE_WEBHOOK_SECRET
    payload:
      cleanup_version: "{{source_version}}"
"""


# The demo's segment: requests from "Chrome" (a quarter of the load generator's requests say so)
# reach the new version first, through an HAProxy map Sluice fills (docs/shapes.md).
SEGMENT_HEADER, SEGMENT_REGEX = "User-Agent", "Chrome"


@dataclass
class DemoStack:
    """Everything `sluice demo` runs, startable and stoppable as one (also used by the e2e test)."""

    workdir: Path
    versions: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEMO_VERSIONS))
    interval: str = "2s"
    step: str = "10s"
    last_step: str = "6s"
    segment: bool = False  # a first step that sends only Chrome's requests to the new version
    bake: str | None = None  # the policy's bake after promotion (docs/bake.md), e.g. "40s"
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[Process] = field(default_factory=list)
    api_url: str = ""
    frontend_url: str = ""
    haproxy_socket: str = ""
    prometheus_url: str = ""
    redis_url: str = ""
    config_path: Path | None = None
    receiver: WebhookReceiver | None = None

    def start(self, say: Any = print) -> DemoStack:
        if not self.redis_url:  # a caller may bring its own Redis (the Sentinel failover test does)
            say("starting Redis")
            redis_proc, self.redis_url = start_redis(self.workdir, persistent=True)
            self.processes.append(redis_proc)
        ports = {}
        for version, env in self.versions.items():
            say(f"starting {SERVICE} {version} under gunicorn")
            proc, ports[version] = start_gunicorn(
                self.workdir,
                f"service-{version}",
                "app.cli.demo.service:create_app()",
                env={"DEMO_SERVICE": SERVICE, "DEMO_VERSION": version, **env},
                threads=8,
            )
            self.processes.append(proc)
        say("starting HAProxy (all traffic on the stable version)")
        segment_maps = [SegmentMap(backend=SERVICE, header=SEGMENT_HEADER, map=str(self.workdir / "segment.map"))]
        haproxy, self.haproxy_socket, fe_ports = start_haproxy(
            self.workdir,
            [HAProxyBackend(SERVICE, ports, {STABLE: 100})],
            segment_maps=segment_maps if self.segment else None,
        )
        self.processes.append(haproxy)
        self.frontend_url = f"http://127.0.0.1:{fe_ports[SERVICE]}/"
        say("starting Prometheus (scraping every second)")
        prom, self.prometheus_url = start_prometheus(
            self.workdir, {SERVICE: [f"127.0.0.1:{p}" for p in ports.values()]}, scrape_interval="1s"
        )
        self.processes.append(prom)
        self.receiver = WebhookReceiver(self.webhook_secret)
        self.config_path = self.workdir / "sluice.yaml"
        self.config_path.write_text(
            CONFIG_TEMPLATE.format(
                prometheus_url=self.prometheus_url,
                socket=self.haproxy_socket,
                service=SERVICE,
                stable=STABLE,
                interval=self.interval,
                step=self.step,
                last_step=self.last_step,
                bake_line=f"\n    bake: {self.bake}" if self.bake else "",
                receiver_url=self.receiver.url,
                segment_maps=(
                    f", segment_maps: [{{backend: {SERVICE}, header: {SEGMENT_HEADER}, map: {segment_maps[0].map}}}]"
                    if self.segment
                    else ""
                ),
                segment_step=(
                    f"\n      - {{segment: {{header: {{name: {SEGMENT_HEADER}, regex: {SEGMENT_REGEX}}}}}, "
                    f"duration: {self.step}}}"
                    if self.segment
                    else ""
                ),
            )
        )
        env = self.sluice_env()
        say("starting Sluice: web (gunicorn) and a worker")
        web, web_port = start_gunicorn(self.workdir, "sluice-web", "app:create_app()", env=env, threads=4)
        self.processes.append(web)
        self.api_url = f"http://127.0.0.1:{web_port}"
        worker = Process("sluice-worker", [*_python(), "-m", "app.cli.main", "worker"], self.workdir, env=env).start()
        self.processes.append(worker)
        return self

    def sluice_env(self) -> dict[str, str]:
        return {
            "SLUICE_CONFIG": str(self.config_path),
            "REDIS_URL": self.redis_url,
            "PROMETHEUS_URL": self.prometheus_url,
            "SLUICE_API_TOKEN": self.token,
            "SLUICE_WEBHOOK_SECRET": self.webhook_secret,
            "SLUICE_LOG_LEVEL": "INFO",
        }

    def client(self) -> SluiceClient:
        return SluiceClient(self.api_url, self.token)

    def wait_for_scrapes(self, timeout: float = 20.0) -> None:
        """Until Prometheus has scraped every demo version at least twice (so rate() has data)."""
        deadline = time.monotonic() + timeout
        query = f'count(count_over_time(http_requests_total{{app="{SERVICE}",code="200"}}[1m]) >= 2)'
        while time.monotonic() < deadline:
            try:
                result = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": query}, timeout=2).json()[
                    "data"
                ]["result"]
                if result and float(result[0]["value"][1]) >= len(self.versions):
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)

    def doctor(self, out: Console) -> bool:
        """Run `sluice doctor` with Sluice's environment, print its checklist; True when nothing failed."""
        import subprocess

        out.rule("[bold]sluice doctor[/]")
        env = {**os.environ, **self.sluice_env(), "NO_COLOR": "1"}
        done = subprocess.run(
            [*_python(), "-m", "app.cli.main", "doctor"], env=env, capture_output=True, text=True, timeout=60
        )
        out.print(done.stdout.rstrip() or done.stderr.rstrip(), highlight=False, markup=False)
        return done.returncode == 0

    def stop(self) -> None:
        if self.receiver:
            self.receiver.stop()
        for proc in reversed(self.processes):
            proc.stop()


def _python() -> list[str]:
    import sys

    return [sys.executable]
