"""`sluice demo`: a real release on this machine, through real HAProxy, judged by a real Prometheus.

It starts, in a temporary folder and on loopback only: Redis, three versions of the demo
service under gunicorn (1.0.370 stable, 1.0.371 good, 1.0.372 bad), HAProxy in front of
them, Prometheus scraping them every second, steady load, Sluice's web process and a
worker, and a local webhook receiver standing in for CI. It releases the good version
(promoted), then the bad one (rolled back), and stops everything it started.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from app.cli.client import SluiceClient
from app.cli.demo.stack import (
    HAProxyBackend,
    Process,
    start_gunicorn,
    start_haproxy,
    start_prometheus,
    start_redis,
)
from integrations.haproxy.segments import SegmentMap
from integrations.notify.webhook import verify

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
    tolerance: 0
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
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"


@dataclass
class Response:
    at: float
    version: str | None
    status: int
    segment: bool = False  # the request carried the segment's header


class LoadGenerator:
    """Steady traffic through HAProxy, recording which version answered each request."""

    def __init__(
        self, url: str, rate: float = 40.0, threads: int = 4, max_seconds: float = 600.0, segment_every: int = 0
    ):
        self.url, self.rate, self.threads, self.max_seconds = url, rate, threads, max_seconds
        self.segment_every = segment_every  # every n-th request of a thread carries the Chrome User-Agent
        self.responses: list[Response] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> LoadGenerator:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self) -> None:
        session = requests.Session()
        period = self.threads / self.rate
        deadline = time.monotonic() + self.max_seconds  # bounded, whatever happens to the caller
        next_at = time.monotonic()
        sent = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent += 1
            chrome = bool(self.segment_every) and sent % self.segment_every == 0
            try:
                resp = session.get(self.url, timeout=5, headers={"User-Agent": CHROME_UA} if chrome else None)
                version = resp.headers.get("X-Version") or _version_of(resp)
                status = resp.status_code
            except requests.RequestException:
                version, status = None, 0
            with self._lock:
                self.responses.append(Response(time.time(), version, status, chrome))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=10)

    def between(self, start: float, end: float) -> Counter[str]:
        with self._lock:
            return Counter(r.version or "error" for r in self.responses if start <= r.at < end)

    def by_segment(self, start: float, end: float) -> dict[bool, Counter[str]]:
        """{True: versions that answered requests with the segment's header, False: the others}."""
        with self._lock:
            spans = [r for r in self.responses if start <= r.at < end]
        return {seg: Counter(r.version or "error" for r in spans if r.segment == seg) for seg in (True, False)}

    def snapshot(self) -> list[Response]:
        with self._lock:
            return list(self.responses)


def _version_of(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("version") if isinstance(body, dict) else None


class WebhookReceiver:
    """Stands in for CI: receives Sluice's signed webhooks and checks their signatures."""

    def __init__(self, secret: str):
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(
                    {
                        "event": self.headers.get("Sluice-Event"),
                        "delivery": self.headers.get("Sluice-Delivery"),
                        "verified": verify(receiver.secret, self.headers.get("Sluice-Signature", ""), body),
                        "payload": json.loads(body or b"{}"),
                    }
                )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sluice"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class DemoStack:
    """Everything `sluice demo` runs, startable and stoppable as one (also used by the e2e test)."""

    workdir: Path
    versions: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEMO_VERSIONS))
    interval: str = "2s"
    step: str = "10s"
    last_step: str = "6s"
    segment: bool = False  # a first step that sends only Chrome's requests to the new version
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


def run_demo(keep: bool = False, console: Console | None = None) -> int:
    from app.cli.report import WIDTH, follow

    out = console or Console(highlight=False, width=WIDTH)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    stack = DemoStack(workdir, segment=True)
    load: LoadGenerator | None = None
    started = time.monotonic()
    try:
        stack.start(say=lambda m: out.print(f"[dim]·[/] {m}"))
        load = LoadGenerator(stack.frontend_url, segment_every=4).start()
        stack.wait_for_scrapes()
        if not stack.doctor(out):
            out.print("[red]sluice doctor found a problem with the demo's wiring; stopping.[/]")
            return 1
        env_file = workdir / "sluice.env"
        env_file.write_text(f"export SLUICE_URL={stack.api_url}\nexport SLUICE_API_TOKEN={stack.token}\n")
        env_file.chmod(0o600)
        out.print(
            f"\nDashboard and API at {stack.api_url} (log in with the SLUICE_API_TOKEN in {env_file}); "
            f"to use the CLI against it meanwhile: source {env_file} && sluice status\n"
        )
        client = stack.client()
        results = {}
        for version, expect in ((GOOD, "succeeded"), (BAD, "failed")):
            out.rule(f"[bold]release {SERVICE} {version}[/] (expected: {expect})")
            t0 = time.time()
            answer = client.deploy(
                SERVICE,
                version,
                application="bluesky",
                ci={"provider": "demo", "build_url": "http://127.0.0.1/demo/build/1"},
            )
            out.print(
                f"deploy notification -> release {answer['release']} ({answer['source_version']} -> "
                f"{answer['target_version']}, policy {answer['policy']})"
            )
            code = follow(client, answer["release"], interval=0.5, timeout=240, out=out)
            release = client.release(answer["release"])
            traffic = load.between(t0, time.time())
            out.print(
                "requests answered during the release, by version: "
                + ", ".join(f"{v}: {n}" for v, n in sorted(traffic.items()))
            )
            _report_segment(out, load, release)
            results[version] = (release, code, t0)
        _report_reaction(out, load, results[BAD][0], results[BAD][2])
        if stack.receiver:
            events = [
                f"{r['event']}({'signed' if r['verified'] else 'BAD SIGNATURE'})" for r in stack.receiver.received
            ]
            out.print(f"webhooks received by the stand-in CI: {', '.join(events) or 'none'}")
        ok = results[GOOD][0]["state"] == "succeeded" and results[BAD][0]["state"] == "failed"
        out.rule("summary")
        for version, (release, _, _) in results.items():
            out.print(
                f"{version}: [bold]{release['state']}[/] after {release['duration_seconds']:.0f}s — {release['reason']}"
            )
        out.print(
            f"{'[green]demo passed' if ok else '[red]demo did not go as expected'}[/] in "
            f"{time.monotonic() - started:.0f}s"
        )
        return 0 if ok else 1
    finally:
        if load:
            load.stop()
        stack.stop()
        if keep:
            out.print(f"kept {workdir} (configs and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def segment_traffic(load: LoadGenerator, release: dict[str, Any]) -> dict[bool, Counter[str]] | None:
    """Who answered during the release's segment step (its first), with and without the header."""
    changes = [e for e in release["events"] if e["type"] == "weights_set"]
    if len(changes) < 2 or "segment" not in changes[0]["message"]:
        return None
    return load.by_segment(changes[0]["at"] + 0.3, changes[1]["at"])


def _report_segment(out: Console, load: LoadGenerator, release: dict[str, Any]) -> None:
    seen = segment_traffic(load, release)
    if seen is None:
        return

    def line(counts: Counter[str]) -> str:
        return ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())) or "none"

    out.print(
        f"segment step ({SEGMENT_HEADER} ~ /{SEGMENT_REGEX}/ -> {release['target_version']}): requests with the "
        f"header were answered by {line(seen[True])}; without it by {line(seen[False])}"
    )


def reaction_times(load: LoadGenerator, release: dict[str, Any], t0: float) -> dict[str, float | None]:
    """From the bad version's first error to (a) Sluice's stable weights and (b) its last response."""
    bad = release["target_version"]
    responses = [r for r in load.snapshot() if r.at >= t0 and r.version == bad]
    first_error = next((r.at for r in responses if r.status >= 500), None)
    last_response = responses[-1].at if responses else None
    # The first weights change after the first error that leaves the bad version at 0 (a segment
    # step also has it at 0, before any error: it serves only the segment then).
    failed_at = next(
        (
            e["at"]
            for e in release["events"]
            if e["type"] == "weights_set"
            and e["data"].get("weights", {}).get(bad, 0) == 0
            and first_error is not None
            and e["at"] >= first_error
        ),
        None,
    )
    return {
        "first_error": first_error,
        "to_weight_zero": (failed_at - first_error) if failed_at and first_error else None,
        "to_last_response": (last_response - first_error) if last_response and first_error else None,
    }


def _report_reaction(out: Console, load: LoadGenerator, release: dict[str, Any], t0: float) -> None:
    times = reaction_times(load, release, t0)
    if times["to_weight_zero"] is None:
        out.print("reaction time: not measurable (no error seen from the bad version)")
        return
    last = times["to_last_response"]
    out.print(
        f"reaction: {times['to_weight_zero']:.1f}s from the bad version's first error to Sluice taking its "
        f"traffic away in HAProxy (weight 0, segment removed)"
        + (f"; last response it served came {last:.1f}s after that first error" if last is not None else "")
    )
