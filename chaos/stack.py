"""One real stack for the chaos suite, with a handle on every process it hurts.

The pieces are the scenario suite's (scenarios/harness.py) and the demo's (app/cli/demo/stack.py):
Redis (with AOF, as production should run it), HAProxy with one frontend and backend per
service, the two versions of every service under gunicorn (app.cli.demo.scenario_service),
Prometheus scraping them every second, Sluice's web process as the Procfile runs it (gevent,
app/web/serving.py), and one `sluice worker` (several while a fault asks: `add_workers`). What
this module adds is the harm: SIGKILL a process and start it again (as a supervisor would), stop
or freeze Redis, stop Prometheus, reload HAProxy the way an operator does (a new process taking
over with `-sf`).

Processes restarted here keep their port (the same command line again), so Sluice's
configuration stays true.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from app.cli.demo.stack import (
    HAProxyBackend,
    Process,
    free_port,
    port_open,
    require_binary,
    start_haproxy,
    start_prometheus,
    start_redis,
    wait_until,
)
from integrations.haproxy.runtime import RuntimeClient
from scenarios.catalog import CANDIDATE_VERSION, STABLE_VERSION, Scenario
from scenarios.harness import APPLICATION, HAPROXY_TIMEOUT_SERVER, REPO, SERVED_BY, Say, Version
from tests.support.sentinel import SentinelStack

HOOK_NAME = "chaos-receiver"
WEB_WORKERS = "2"
# Every service is also deployed by a CircleCI job and an Argo CD Application (the mixed-intake
# storm announces one version through all three): project gh/chaos/<service>, job `deploy`,
# version 1.0.<pipeline.number>; Application <service>, version from its Git revision.
CIRCLECI_SLUG = "gh/chaos/{service}"
CIRCLECI_JOB = "deploy"
CIRCLECI_SECRET = "chaos-circleci-webhook-secret-for-the-test-stack"  # noqa: S105 - a test stack's own, made up


@dataclass(frozen=True)
class Service:
    """One release under test: a scenario service (its versions' behaviour) under a policy."""

    scenario: Scenario
    policy: str

    @property
    def name(self) -> str:
        return self.scenario.service


def policies() -> list[dict[str, Any]]:
    """The README's policy scaled like the scenario suite's (interval 2 s, steps 20 s / 15 s / 10 s),
    and the same under each `on_no_data` rule for the Prometheus outage."""
    base: dict[str, Any] = {
        "interval": "2s",
        "steps": [
            {"weight": 10, "duration": "20s"},
            {"weight": 50, "duration": "15s"},
            {"weight": 100, "duration": "10s"},
        ],
        "judge": {"warmup": "15s"},
        "checks": [{"name": "fast-responses", "type": "latency", "under": "500ms", "min": 0.9}],
    }
    return [{"name": "chaos", **base}] + [
        {"name": f"chaos-{rule}", **base, "on_no_data": rule} for rule in ("hold", "fail", "pass")
    ]


STEP_SECONDS = [20.0, 15.0, 10.0]
STEP_WEIGHTS = [10, 50, 100]


def sluice_config(services: list[Service], prometheus_url: str, socket: str, receiver_url: str) -> str:
    config = {
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "applications": [
            {
                "name": APPLICATION,
                "namespace": "default",
                "router": {"type": "haproxy", "socket": socket},
                "services": [
                    {"name": s.name, "backend": s.name, "stable_version": STABLE_VERSION, "policy": s.policy}
                    for s in services
                ],
            }
        ],
        "policies": policies(),
        "circleci": {
            "projects": [
                {
                    "slug": CIRCLECI_SLUG.format(service=s.name),
                    "deploys": [{"job": CIRCLECI_JOB, "service": s.name, "version": "1.0.{pipeline.number}"}],
                }
                for s in services
            ]
        },
        "argo": {"applications": [{"name": s.name, "service": s.name, "version_from": "revision"} for s in services]},
        "hooks": [
            {
                "name": HOOK_NAME,
                "type": "webhook",
                "on": ["started", "step_passed", "succeeded", "failed", "aborted"],
                "url": receiver_url,
                "timeout": "5s",
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


class ChaosStack:
    def __init__(self, workdir: Path, services: list[Service], receiver_url: str, token: str, say: Say = print):
        self.workdir, self.services, self.receiver_url, self.token, self.say = (
            workdir,
            services,
            receiver_url,
            token,
            say,
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.versions: list[Version] = []
        self.frontends: dict[str, int] = {}
        self.socket = ""
        self.api_url = ""
        self.env: dict[str, str] = {}
        self.redis: Process | None = None
        self.haproxy: Process | None = None
        self.prometheus: Process | None = None
        self.web: Process | None = None
        self.worker: Process | None = None
        self.more_workers: list[Process] = []  # beside `worker`, while a fault runs several (add_workers)
        self.loads: list[Process] = []
        self.retired: list[Process] = []  # HAProxy processes replaced by a reload
        self.sentinel: SentinelStack | None = None  # while Sluice runs on Redis Sentinel
        self.plain_redis_url = ""

    # --- start and stop ---------------------------------------------------------------------------

    def start(self) -> None:
        self.redis, redis_url = start_redis(self.workdir, persistent=True)
        for s in self.services:
            for which, version in (("stable", STABLE_VERSION), ("candidate", CANDIDATE_VERSION)):
                env = {"SCN_SERVICE": s.name, "SCN_VERSION": version, **s.scenario.env(which)}  # type: ignore[arg-type]
                self.versions.append(Version(s.scenario, which, version, free_port(), env, self.workdir))
        self.say(f"starting {len(self.versions)} service versions under gunicorn")
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda v: v.start(), self.versions))
        ports: dict[str, dict[str, int]] = {}
        for v in self.versions:
            ports.setdefault(v.scenario.service, {})[v.version] = v.port
        self.haproxy, self.socket, self.frontends = start_haproxy(
            self.workdir,
            [HAProxyBackend(name, servers, {STABLE_VERSION: 100}) for name, servers in ports.items()],
            timeout_server=HAPROXY_TIMEOUT_SERVER,
            backend_lines=[f"http-after-response set-header {SERVED_BY} %s"],
        )
        self.prometheus, prometheus_url = start_prometheus(
            self.workdir,
            {name: [f"127.0.0.1:{p}" for p in servers.values()] for name, servers in ports.items()},
            scrape_interval="1s",
        )
        config = self.workdir / "sluice.yaml"
        config.write_text(sluice_config(self.services, prometheus_url, self.socket, self.receiver_url))
        self.env = {
            "SLUICE_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "PROMETHEUS_URL": prometheus_url,
            "SLUICE_API_TOKEN": self.token,
            "CIRCLECI_WEBHOOK_SECRET": CIRCLECI_SECRET,
            "SLUICE_LOG_LEVEL": "INFO",
            "WEB_CONCURRENCY": WEB_WORKERS,
            "PYTHONPATH": str(REPO),
        }
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        # As the Procfile runs it: gevent workers under app/web/serving.py.
        web_args = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "app" / "web" / "serving.py")]
        web_args += ["--bind", f"127.0.0.1:{port}", "app:create_app()"]
        self.web = Process("sluice-web", web_args, self.workdir, env=self.env)
        self.start_web()
        self.worker = Process(
            "sluice-worker", [sys.executable, "-m", "app.cli.main", "worker"], self.workdir, env=self.env
        )
        self.worker.start()

    def stop(self) -> None:
        for load in self.loads:
            load.stop(timeout=15)
        for v in self.versions:
            if v.proc:
                v.proc.stop(timeout=5)
        self.remove_workers()
        for proc in (self.worker, self.web, self.prometheus, self.haproxy, *self.retired, self.redis):
            if proc is not None:
                self.thaw(proc)
                proc.stop()
        self.stop_sentinel()

    # --- traffic ----------------------------------------------------------------------------------

    def start_load(self, services: list[Service], duration: float) -> Path:
        """The scenario suite's load generator (scenarios/load.py) for these services only."""
        plan = {
            "duration": duration,
            "scenarios": [
                {"name": s.name, "port": self.frontends[s.name], "pattern": s.scenario.pattern.__dict__}
                for s in services
            ],
        }
        n = len(self.loads) + 1
        plan_path, out = self.workdir / f"load-plan-{n}.json", self.workdir / f"load-{n}.jsonl"
        plan_path.write_text(json.dumps(plan))
        load = Process(f"load-{n}", [sys.executable, "-m", "scenarios.load", str(plan_path), str(out)], self.workdir)
        load.env = {"PYTHONPATH": str(REPO)}
        self.loads.append(load.start())
        return out

    # --- harm -------------------------------------------------------------------------------------

    def start_web(self) -> None:
        assert self.web is not None
        self.web.start()
        wait_until(
            lambda: requests.get(f"{self.api_url}/healthz", timeout=1).ok, 30, "sluice web", self.web.proc, self.web.log
        )

    def kill(self, proc: Process | None) -> None:
        """SIGKILL the process and everything in its process group (gunicorn's workers too)."""
        if proc is not None:
            proc.kill()

    def restart_worker(self) -> None:
        assert self.worker is not None
        self.worker.start()

    @property
    def workers(self) -> list[Process]:
        return [w for w in (self.worker, *self.more_workers) if w is not None]

    def add_workers(self, n: int) -> None:
        """`n` more `sluice worker` processes on the same Redis and configuration: each runs its own
        standby scheduler (workers/worker.py), one of which leads at a time."""
        for _ in range(n):
            name = f"sluice-worker-{len(self.workers) + 1}"
            args = [sys.executable, "-m", "app.cli.main", "worker"]
            self.more_workers.append(Process(name, args, self.workdir, env=self.env).start())

    def remove_workers(self) -> None:
        """Back to the one worker: the others stopped (SIGTERM: RQ finishes the job it runs)."""
        for proc in self.more_workers:
            self.thaw(proc)
            proc.stop()
        self.more_workers = []

    def use_redis(self, url: str) -> None:
        """Run Sluice's web process and worker on another Redis (stopped, then started with `url`)."""
        assert self.web is not None and self.worker is not None
        self.worker.stop()
        self.web.stop()
        self.env["REDIS_URL"] = url  # the Processes' own env: the same dict
        self.start_web()
        self.worker.start()

    def start_sentinel(self) -> None:
        """A master, a replica and three sentinels (tests/support/sentinel.py, Debian's
        redis-sentinel), and Sluice moved onto them (REDIS_URL=redis+sentinel://...)."""
        self.plain_redis_url = self.env["REDIS_URL"]
        self.sentinel = SentinelStack(self.workdir / "sentinel").start()
        self.use_redis(self.sentinel.url())

    def leave_sentinel(self) -> None:
        """Sluice back on the plain Redis; the Sentinel stack stopped."""
        if self.sentinel is not None:
            self.use_redis(self.plain_redis_url)
            self.stop_sentinel()

    def stop_sentinel(self) -> None:
        if self.sentinel is None:
            return
        for proc, _ in [*self.sentinel.sentinel_procs, *self.sentinel.servers]:
            proc.stop()
        self.sentinel = None

    def stop_redis(self) -> None:
        """A clean stop (SIGTERM: Redis writes its AOF), as `systemctl stop redis` does."""
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        self.redis.start()
        port = int(self.env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        wait_until(lambda: port_open(port), 15, "redis-server", self.redis.proc, self.redis.log)

    def freeze(self, proc: Process | None) -> None:
        if proc is not None and proc.proc is not None:
            os.kill(proc.proc.pid, signal.SIGSTOP)

    def thaw(self, proc: Process | None) -> None:
        if proc is not None and proc.proc is not None and proc.proc.poll() is None:
            os.kill(proc.proc.pid, signal.SIGCONT)

    def stop_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.stop()

    def start_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.start()
        url = self.env["PROMETHEUS_URL"]
        wait_until(
            lambda: requests.get(f"{url}/-/ready", timeout=1).status_code == 200,
            30,
            "prometheus",
            self.prometheus.proc,
            self.prometheus.log,
        )

    def reload_haproxy(self) -> None:
        assert self.haproxy is not None
        self.retired.append(self.haproxy)
        self.haproxy = reload_haproxy(self.workdir, self.haproxy, self.socket, f"haproxy-{len(self.retired) + 1}")

    # --- reading ----------------------------------------------------------------------------------

    def haproxy_weights(self, service: str) -> dict[str, int]:
        servers = RuntimeClient(self.socket).servers(service)
        return {name: info["weight"] for name, info in servers.items()}

    def logs_text(self, proc: Process | None) -> str:
        if proc is None or not proc.log.exists():
            return ""
        return proc.log.read_text(errors="replace")


def leading_worker(workers: list[Process]) -> Process | None:
    """The worker whose scheduler leads now: of the running ones that logged "scheduler: leading"
    (INFO) since they last started, the latest. Logs are appended across restarts, so a killed
    leader's old line must not name its restarted process, which may not lead. JSON lines start
    with their ISO time, so the latest line sorts highest."""
    latest: tuple[str, Process | None] = ("", None)
    for worker in workers:
        if not worker.log.exists() or worker.proc is None or worker.proc.poll() is not None:
            continue
        with open(worker.log, "rb") as log:
            log.seek(worker.log_start)
            since_start = log.read().decode(errors="replace").splitlines()
        leading = [x for x in since_start if "scheduler: leading" in x]
        if leading and leading[-1] > latest[0]:
            latest = (leading[-1], worker)
    return latest[1]


def wait_for_leader(workers: list[Process], timeout: float, stop: threading.Event) -> Process | None:
    """The leading worker, waiting up to `timeout` for one (after a leader's death a standby takes
    the lead within the leader lease's TTL)."""
    deadline = time.time() + timeout
    while True:
        lead = leading_worker(workers)
        if lead is not None or time.time() >= deadline or stop.wait(0.2):
            return lead


def reload_haproxy(workdir: Path, old: Process, socket: str, name: str) -> Process:
    """What `systemctl reload haproxy` does without a master process: a new HAProxy reads the
    configuration file (`workdir/haproxy.cfg`, as app/cli/demo/stack.py writes it) and takes over the
    listeners and the admin socket; the old one (`-sf`) finishes its connections and exits.
    Runtime weights set over the socket are not carried over: the file's are back."""
    assert old.proc is not None
    binary = require_binary("haproxy", "haproxy")
    new = Process(name, [binary, "-db", "-f", str(workdir / "haproxy.cfg"), "-sf", str(old.proc.pid)], workdir)
    new.start()
    assert new.proc is not None
    started = time.monotonic()
    # The new process is serving once it answers on the admin socket with its own pid.
    while time.monotonic() - started < 15:
        try:
            if f"Pid: {new.proc.pid}" in RuntimeClient(socket).run("show info"):
                return new
        except Exception:  # noqa: BLE001 - the socket is being replaced: ask again
            time.sleep(0.05)
            continue
        time.sleep(0.05)
    raise RuntimeError(f"the reloaded HAProxy did not take over its admin socket within 15 s:\n{new.log}")
