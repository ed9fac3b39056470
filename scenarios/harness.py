"""Run release scenarios concurrently on one real stack, under one Sluice policy.

One stack per policy: Redis, one HAProxy (one frontend + backend per scenario, `timeout
server 3s`, a response header naming the server that answered, even for HAProxy's own
errors), the two versions of every scenario under gunicorn (1 worker, a few threads), one
Prometheus scraping all of them every second, Sluice's web process and one worker, and one
load generator process (scenarios/load.py) sending every scenario's traffic through HAProxy.
Each scenario's candidate is announced with `POST /hooks/deploy`, as CI would, and followed
through the API until it ends (or the harness aborts it after the scenario's `max_s`).

A fresh stack per policy keeps policies independent: every scenario starts from its stable
version, fresh counters and a fresh warm-up.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from app.cli.client import SluiceClient
from app.cli.demo.stack import (
    HAProxyBackend,
    Process,
    free_port,
    start_gunicorn,
    start_haproxy,
    start_prometheus,
    start_redis,
    wait_until,
)
from scenarios.catalog import CANDIDATE_VERSION, STABLE_VERSION, Scenario
from scenarios.worker_stats import tick_stats

REPO = Path(__file__).resolve().parent.parent
APPLICATION = "scenarios"
HAPROXY_TIMEOUT_SERVER = "3s"
SERVED_BY = "X-Served-By"
Say = Callable[[str], None]


# --- policies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    name: str
    path: Path
    policy: dict[str, Any]
    metrics: dict[str, Any]


def load_policy(path: Path) -> Policy:
    """A policy file: a Sluice config fragment with one policy under `policies` (and optional `metrics`)."""
    data = yaml.safe_load(path.read_text()) or {}
    policies = data.get("policies") or []
    if len(policies) != 1:
        raise SystemExit(f"{path}: expected exactly one policy under `policies`, found {len(policies)}")
    return Policy(name=policies[0]["name"], path=path, policy=policies[0], metrics=data.get("metrics") or {})


def sluice_config(policy: Policy, scenarios: list[Scenario], prometheus_url: str, socket: str) -> str:
    config = {
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "applications": [
            {
                "name": APPLICATION,
                "namespace": "default",
                "router": {"type": "haproxy", "socket": socket},
                "services": [
                    {"name": s.service, "backend": s.service, "stable_version": STABLE_VERSION, "policy": policy.name}
                    for s in scenarios
                ],
            }
        ],
        "policies": [policy.policy],
    }
    if policy.metrics:
        config["metrics"] = policy.metrics
    return yaml.safe_dump(config, sort_keys=False)


# --- the scenario services -----------------------------------------------------------------------


@dataclass
class Version:
    scenario: Scenario
    which: str  # stable | candidate
    version: str
    port: int
    env: dict[str, str]
    workdir: Path
    proc: Process | None = None
    starts: int = 0
    exited_at: float | None = None

    @property
    def name(self) -> str:
        return f"{self.scenario.service}-{self.which}"

    def start(self) -> None:
        self.starts += 1
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            str(self.scenario.threads),
            "--graceful-timeout",
            "2",
            "--no-control-socket",
            "app.cli.demo.scenario_service:create_app()",
        ]
        self.proc = Process(f"{self.name}-{self.starts}", args, self.workdir, env=self.env).start()
        self.exited_at = None
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok,
            60,
            self.name,
            self.proc.proc,
            self.proc.log,
        )

    def alive(self) -> bool:
        return bool(self.proc and self.proc.proc and self.proc.proc.poll() is None)


class Supervisor(threading.Thread):
    """Restarts crashed candidates of crash-loop scenarios (as Kubernetes would), after a delay."""

    def __init__(self, versions: list[Version]):
        super().__init__(name="scenario-supervisor", daemon=True)
        self.versions = [v for v in versions if v.which == "candidate" and v.scenario.restart_after_s is not None]
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for v in self.versions:
                if v.alive():
                    continue
                now = time.monotonic()
                if v.exited_at is None:
                    v.exited_at = now
                elif now - v.exited_at >= (v.scenario.restart_after_s or 0):
                    try:
                        v.start()
                    except RuntimeError:
                        v.exited_at = time.monotonic()


# --- results -------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: Scenario
    policy: str
    outcome: str  # promoted | rolled_back | held (no verdict: the harness aborted it) | aborted | not started
    right: bool
    verdict: str  # right | wrong | late
    traffic_at: float | None = None
    ended_at: float | None = None
    detection_s: float | None = None  # rolled back: from the candidate's first traffic to its weight 0
    decided_s: float | None = None  # from the candidate's first traffic to the end
    reason: str = ""
    evidence: str = ""
    client: dict[str, Any] = field(default_factory=dict)
    release_id: str = ""
    candidate_starts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "policy": self.policy,
            "expected": self.scenario.expected,
            "deadline_s": self.scenario.deadline_s,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "right": self.right,
            "detection_s": self.detection_s,
            "decided_s": self.decided_s,
            "reason": self.reason,
            "evidence": self.evidence,
            "client": self.client,
            "release": self.release_id,
            "candidate_starts": self.candidate_starts,
        }


# How Sluice's reason begins when a step failed for lack of evidence (app/core/decide.py).
SHORT_OF_EVIDENCE = "not enough evidence to judge"


def judge_result(scenario: Scenario, outcome: str, detection_s: float | None, reason: str = "") -> tuple[bool, str]:
    if scenario.expected == "promoted":
        ok = outcome == "promoted"
        return ok, "right" if ok else "wrong"
    if scenario.expected == "short_of_evidence":
        ok = outcome == "promoted" or (outcome == "rolled_back" and reason.startswith(SHORT_OF_EVIDENCE))
        return ok, "right" if ok else "wrong"
    if scenario.expected == "either":
        ok = outcome in ("promoted", "rolled_back")
        return ok, "right" if ok else "wrong"
    if outcome != "rolled_back":
        return False, "wrong"
    if scenario.deadline_s is not None and (detection_s is None or detection_s > scenario.deadline_s):
        return False, "late"
    return True, "right"


def _weights_events(release: dict[str, Any]) -> list[tuple[float, dict[str, int]]]:
    return [(e["at"], e["data"].get("weights", {})) for e in release.get("events", []) if e["type"] == "weights_set"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "no data" if value is None else str(value)


def evidence_text(release: dict[str, Any]) -> str:
    """The last evaluation's results (the failing ones first), as Sluice recorded them."""
    evaluations = release.get("evaluations") or []
    if not evaluations:
        return "no evaluation recorded"
    last_at = max(e["at"] for e in evaluations)
    last = [e for e in evaluations if abs(e["at"] - last_at) < 1e-6]
    last.sort(key=lambda e: e["verdict"] == "pass")
    parts = []
    for e in last:
        stable = f" (stable {_fmt(e.get('stable_value'))})" if e.get("stable_value") is not None else ""
        detail = f": {e['detail']}" if e.get("detail") and e["verdict"] != "fail" else ""
        parts.append(f"{e['name']} {_fmt(e.get('value'))}{stable} {e['verdict']}{detail}")
    return f"step {last[0]['step'] + 1}: " + "; ".join(parts)


def client_view(rows: list[list[Any]], start: float | None, end: float | None) -> dict[str, Any]:
    """What the clients saw from the candidate (by HAProxy's server header) and from no server at all."""
    if start is None:
        return {}
    stop = end if end is not None else float("inf")
    seen: Counter[str] = Counter()
    for _name, at, status, _version, server, _ms in rows:
        if not start <= at < stop:
            continue
        if server == CANDIDATE_VERSION:
            seen["n"] += 1
            if status == 504:
                seen["504"] += 1
            elif status >= 500:
                seen["5xx"] += 1
            elif status >= 400:
                seen["4xx"] += 1
        elif status == 0:
            seen["no answer"] += 1
        elif server not in (STABLE_VERSION, CANDIDATE_VERSION):
            seen["no server"] += 1  # HAProxy's 503 with no server available
    return dict(seen)


def client_text(seen: dict[str, Any]) -> str:
    n = seen.get("n", 0)
    if not seen:
        return ""
    parts = [f"n={n}"]
    for key in ("5xx", "4xx", "504"):
        if seen.get(key):
            parts.append(f"{key} {seen[key] / n:.1%}" if n else f"{key} {seen[key]}")
    for key in ("no server", "no answer"):
        if seen.get(key):
            parts.append(f"{key}: {seen[key]}")
    return ", ".join(parts)


# --- one policy ----------------------------------------------------------------------------------


# How long stable serves alone before the releases are announced. In production it has served for
# hours; the judge reads its 10 minutes before a release (app/release/observe.py) as its record, which
# pins its rate for promotion's floor: at 1% background errors, a few seconds of it left "3x stable"
# unprovable at 100% and good versions failed on the evidence timeout (docs/judging.md). Three minutes
# at 40 req/s (~7,000 requests) is what the scenarios with background errors need.
STABLE_HISTORY_S = 180.0


class PolicyRun:
    def __init__(
        self,
        policy: Policy,
        scenarios: list[Scenario],
        workdir: Path,
        say: Say = print,
        stable_history_s: float = STABLE_HISTORY_S,
    ):
        self.policy, self.scenarios, self.say = policy, scenarios, say
        self.stable_history_s = stable_history_s
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.versions: list[Version] = []
        self.supervisor: Supervisor | None = None
        self.load: Process | None = None
        self.token = secrets.token_hex(16)
        self.api_url = ""
        self.worker: dict[str, float | None] = {}  # tick lag and duration over the run (worker_stats.py)
        self.frontends: dict[str, int] = {}
        self.spike_files = {s.name: workdir / f"spike-{s.name}" for s in scenarios if s.shared_spike}

    # stack

    def start(self) -> None:
        say = self.say
        redis_proc, redis_url = start_redis(self.workdir)
        self.processes.append(redis_proc)
        for s in self.scenarios:
            for which, version in (("stable", STABLE_VERSION), ("candidate", CANDIDATE_VERSION)):
                env = {"SCN_SERVICE": s.service, "SCN_VERSION": version, **s.env(which)}  # type: ignore[arg-type]
                if s.name in self.spike_files:
                    env["SCN_SPIKE_FILE"] = str(self.spike_files[s.name])
                self.versions.append(Version(s, which, version, free_port(), env, self.workdir))
        say(f"starting {len(self.versions)} scenario services under gunicorn")
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda v: v.start(), self.versions))
        self.supervisor = Supervisor(self.versions)
        self.supervisor.start()
        ports: dict[str, dict[str, int]] = {}
        for v in self.versions:
            ports.setdefault(v.scenario.service, {})[v.version] = v.port
        haproxy, socket, self.frontends = start_haproxy(
            self.workdir,
            [HAProxyBackend(service, servers, {STABLE_VERSION: 100}) for service, servers in ports.items()],
            timeout_server=HAPROXY_TIMEOUT_SERVER,
            backend_lines=[f"http-after-response set-header {SERVED_BY} %s"],
        )
        self.processes.append(haproxy)
        prom, prometheus_url = start_prometheus(
            self.workdir,
            {service: [f"127.0.0.1:{p}" for p in servers.values()] for service, servers in ports.items()},
            scrape_interval="1s",
        )
        self.processes.append(prom)
        self.prometheus_url = prometheus_url
        config = self.workdir / "sluice.yaml"
        config.write_text(sluice_config(self.policy, self.scenarios, prometheus_url, socket))
        env = {
            "SLUICE_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "PROMETHEUS_URL": prometheus_url,
            "SLUICE_API_TOKEN": self.token,
            "SLUICE_LOG_LEVEL": "INFO",
        }
        say(f"starting Sluice (web + worker) with policy {self.policy.name}")
        web, web_port = start_gunicorn(self.workdir, "sluice-web", "app:create_app()", env=env, threads=4)
        self.processes.append(web)
        self.api_url = f"http://127.0.0.1:{web_port}"
        worker = Process(
            "sluice-worker", [sys.executable, "-m", "app.cli.main", "worker"], self.workdir, env=env
        ).start()
        self.processes.append(worker)

    def start_load(self, duration: float) -> Path:
        plan = {
            "duration": duration,
            "scenarios": [
                {"name": s.name, "port": self.frontends[s.service], "pattern": s.pattern.__dict__}
                for s in self.scenarios
            ],
        }
        plan_path, out = self.workdir / "load-plan.json", self.workdir / "load.jsonl"
        plan_path.write_text(json.dumps(plan))
        self.load = Process(
            "load",
            [sys.executable, "-m", "scenarios.load", str(plan_path), str(out)],
            self.workdir,
            env={"PYTHONPATH": str(REPO)},
        ).start()
        return out

    def wait_for_scrapes(self, timeout: float = 60.0) -> None:
        """Until Prometheus has scraped every version at least twice and seen every stable version's
        traffic grow (so stable has data in every window when the releases start)."""
        queries = {
            'count(count_over_time(http_requests_total{app=~"scn-.*",code="200"}[1m]) >= 2)': len(self.versions),
            f'count(sum by (app) (increase(http_requests_total{{app=~"scn-.*",version="{STABLE_VERSION}"}}[20s]))'
            " > 0)": len(self.scenarios),
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ok = True
                for query, want in queries.items():
                    result = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": query}, timeout=2)
                    data = result.json()["data"]["result"]
                    ok = ok and bool(data) and float(data[0]["value"][1]) >= want
                if ok:
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)
        self.say(f"warning: not every version was scraped twice within {timeout:.0f}s; starting anyway")

    def stop(self) -> None:
        if self.supervisor:
            self.supervisor.stopping.set()
            self.supervisor.join(timeout=2)
        if self.load:
            self.load.stop(timeout=15)
        for v in self.versions:
            if v.proc:
                v.proc.stop(timeout=5)
        for proc in reversed(self.processes):
            proc.stop()

    # the releases

    def run(self) -> list[Result]:
        started = time.monotonic()
        try:
            self.start()
            longest = max(s.max_s for s in self.scenarios)
            out = self.start_load(duration=self.stable_history_s + longest + 60)
            self.wait_for_scrapes()
            self.say(f"stable serves alone for {self.stable_history_s:.0f}s before the releases")
            time.sleep(self.stable_history_s)
            client = SluiceClient(self.api_url, self.token, timeout=15)
            deployed: dict[str, tuple[str, float]] = {}
            for s in self.scenarios:
                at = time.time()
                answer = client.deploy(s.service, CANDIDATE_VERSION, application=APPLICATION)
                deployed[s.name] = (answer["release"], at)
            self.say(f"{len(deployed)} releases announced; following them (policy {self.policy.name})")
            events = threading.Thread(target=self._events, args=(deployed,), daemon=True)
            events.start()
            releases = self._follow(client, deployed)
            self.worker = tick_stats(self.api_url, self.token)
            if self.load:
                self.load.stop(timeout=15)
            rows = _read_rows(out)
            results = [self._result(s, releases.get(s.name), deployed, rows) for s in self.scenarios]
        finally:
            for spike in self.spike_files.values():
                spike.unlink(missing_ok=True)
            self.stop()
        self.say(f"policy {self.policy.name}: done in {time.monotonic() - started:.0f}s")
        return results

    def _events(self, deployed: dict[str, tuple[str, float]]) -> None:
        timeline = sorted(
            (deployed[s.name][1] + e.at, s, e) for s in self.scenarios if s.name in deployed for e in s.events
        )
        for at, s, e in timeline:
            time.sleep(max(0.0, at - time.time()))
            spike = self.spike_files.get(s.name)
            if spike is None:
                continue
            if e.kind == "spike_on":
                spike.write_text(f"{e.value:g}")
            elif e.kind == "spike_off":
                spike.unlink(missing_ok=True)

    def _follow(self, client: SluiceClient, deployed: dict[str, tuple[str, float]]) -> dict[str, dict[str, Any]]:
        pending = dict(deployed)
        done: dict[str, dict[str, Any]] = {}
        by_name = {s.name: s for s in self.scenarios}
        while pending:
            time.sleep(1)
            try:
                page = client.releases(application=APPLICATION, limit=500)["releases"]
            except Exception as exc:  # noqa: BLE001 - keep following through a hiccup
                self.say(f"warning: listing releases failed: {exc}")
                continue
            states = {r["id"]: r["state"] for r in page}
            for name, (release_id, at) in list(pending.items()):
                state = states.get(release_id)
                if state in ("succeeded", "failed", "aborted"):
                    done[name] = client.release(release_id)
                    del pending[name]
                    self.say(f"  {name}: {state} after {time.time() - at:.0f}s")
                elif time.time() - at > by_name[name].max_s:
                    before = client.release(release_id)
                    try:
                        client.steer(release_id, "abort", reason="scenario harness: no verdict within max_s")
                    except Exception as exc:  # noqa: BLE001
                        self.say(f"warning: could not abort {name}: {exc}")
                    release = client.release(release_id)
                    release["_held"] = before.get("reason") or ""
                    done[name] = release
                    del pending[name]
                    self.say(f"  {name}: no verdict after {time.time() - at:.0f}s (aborted by the harness)")
        return done

    def _result(
        self,
        s: Scenario,
        release: dict[str, Any] | None,
        deployed: dict[str, tuple[str, float]],
        rows: list[list[Any]],
    ) -> Result:
        candidate = next(v for v in self.versions if v.scenario is s and v.which == "candidate")
        if release is None:
            return Result(s, self.policy.name, "not started", False, "wrong", reason="no release")
        changes = _weights_events(release)
        traffic_at = next((at for at, w in changes if w.get(CANDIDATE_VERSION, 0) > 0), None)
        ended_at = release.get("finished_at")
        if "_held" in release:
            outcome = "held"
            ended_at = release.get("finished_at") or time.time()
        else:
            outcome = {"succeeded": "promoted", "failed": "rolled_back"}.get(release["state"], release["state"])
        detection = None
        if outcome == "rolled_back" and traffic_at is not None:
            zero_at = next((at for at, w in changes if at >= traffic_at and w.get(CANDIDATE_VERSION, 0) == 0), ended_at)
            detection = round(zero_at - traffic_at, 1) if zero_at else None
        decided = round(ended_at - traffic_at, 1) if ended_at and traffic_at else None
        reason = release.get("reason") or ""
        right, verdict = judge_result(s, outcome, detection, reason)
        if outcome == "held":
            reason = f"no verdict within {s.max_s:.0f}s (the harness aborted it); Sluice's last word: " + (
                release["_held"] or "none"
            )
        rows_s = [r for r in rows if r[0] == s.name]
        return Result(
            scenario=s,
            policy=self.policy.name,
            outcome=outcome,
            right=right,
            verdict=verdict,
            traffic_at=traffic_at,
            ended_at=ended_at,
            detection_s=detection,
            decided_s=decided,
            reason=reason,
            evidence=evidence_text(release),
            client=client_view(rows_s, traffic_at, ended_at),
            release_id=release.get("id", ""),
            candidate_starts=candidate.starts,
        )


def _read_rows(path: Path) -> list[list[Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
