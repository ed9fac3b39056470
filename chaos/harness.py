"""Run one fault: announce its releases, inject the fault while they run, check the invariants.

A phase is one fault on the shared stack (chaos/stack.py): its own services (so every release
starts from stable 1.0.0 with fresh counters), traffic for those services only, the releases
announced with `POST /hooks/deploy` as CI would, the fault injected from a thread, and the
releases followed through the API until they end. Then the invariants, for every release:

- it reached the verdict its fault expects (`promoted` or `rolled_back`), by itself: a release
  still running at the phase's limit is `stuck` (the harness aborts it);
- no step, event or hook lost or doubled: one `started` event, each passed step once, one
  end; no step shorter than its duration (from the weights' confirmation to its passing);
  one hook delivery per event that fired, each delivered and seen by the receiver (a
  receiver may see a delivery again, with the same `Sluice-Delivery` id, when its sender died
  mid-request: reported as re-sent); no router change recorded twice;
- HAProxy ends with all traffic on the right version (candidate for a promotion, stable for
  a rollback), read from HAProxy's runtime API;
- no 5xx from Sluice to the harness's own calls, except 503 with `Retry-After` (the answer
  Sluice gives while Redis is unreachable) and `/readyz`'s 503 (not ready), counted apart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

from chaos.receiver import HookReceiver
from chaos.stack import STEP_SECONDS, STEP_WEIGHTS, ChaosStack, Service
from scenarios.catalog import CANDIDATE_VERSION, STABLE_VERSION
from scenarios.harness import APPLICATION

Expected = Literal["promoted", "rolled_back"]
TERMINAL = ("succeeded", "failed", "aborted")
OUTCOME = {"succeeded": "promoted", "failed": "rolled_back", "aborted": "aborted"}
WARMUP_S = 8.0  # traffic before the deploy, so stable has history in every window
SETTLE_S = 90.0  # after the releases end: time for hook deliveries still being retried


class Api:
    """The harness's HTTP calls to Sluice, with every answer's status counted."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.session = requests.Session()
        self.statuses: Counter[str] = Counter()
        self.lock = threading.Lock()

    def call(self, method: str, path: str, timeout: float = 10.0, **kwargs: Any) -> requests.Response | None:
        try:
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            resp = requests.request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)
        except requests.RequestException:
            with self.lock:
                self.statuses["no answer"] += 1
            return None
        with self.lock:
            if resp.status_code == 503 and resp.headers.get("Retry-After"):
                self.statuses["503 Retry-After"] += 1
            elif resp.status_code == 503 and path == "/readyz":
                self.statuses["503 not ready"] += 1  # what a readiness probe is for
            elif resp.status_code >= 500:
                self.statuses["5xx"] += 1
                self.statuses[f"5xx: {method} {path.split('?')[0]} {resp.status_code} {resp.text[:120]}"] += 1
            else:
                self.statuses[f"{resp.status_code // 100}xx"] += 1
        return resp

    def release(self, release_id: str) -> dict[str, Any] | None:
        resp = self.call("GET", f"/api/v1/releases/{release_id}")
        return resp.json() if resp is not None and resp.status_code == 200 else None

    def deploy(self, service: str) -> requests.Response | None:
        body = {"service": service, "version": CANDIDATE_VERSION, "application": APPLICATION}
        return self.call("POST", "/hooks/deploy", json=body)


@dataclass(frozen=True)
class Role:
    """One release of a fault: the candidate's behaviour, its policy, what must happen to it."""

    key: str
    expected: Expected
    policy: str = "chaos"
    candidate: tuple[tuple[str, str], ...] = (("SCN_LATENCY_MS", "12"),)
    late: bool = False  # announced by the injector during the fault, not with the others
    traffic: str = "steady"  # scenarios.catalog.PATTERNS


@dataclass
class Phase:
    """One fault being run: what the injector and the checks share."""

    fault: Fault
    stack: ChaosStack
    api: Api
    receiver: HookReceiver
    services: dict[str, Service]
    releases: dict[str, str] = field(default_factory=dict)  # role -> release id
    deployed_at: float = 0.0
    fault_started: float | None = None
    fault_ended: float | None = None
    recovered_s: float | None = None
    measures_recovery: bool = False  # the injector measures `recovered_s` itself (None: never recovered)
    notes: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)  # extra (what, held?) from the injector
    done: threading.Event = field(default_factory=threading.Event)

    def release(self, role: str) -> dict[str, Any] | None:
        rid = self.releases.get(role)
        return self.api.release(rid) if rid else None

    def wait_for(self, role: str, test: Callable[[dict[str, Any]], bool], timeout: float = 120.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline and not self.done.is_set():
            release = self.release(role)
            if release is not None and test(release):
                return True
            time.sleep(0.3)
        return False

    def sleep(self, seconds: float) -> None:
        self.done.wait(seconds)


@dataclass(frozen=True)
class Fault:
    name: str
    fault: str  # in words
    when: str
    expected: str  # in words
    roles: tuple[Role, ...]
    inject: Callable[[Phase], None]
    announce: Callable[[Phase], None] | None = None  # instead of one deploy notification per role
    max_s: float = 240.0
    fast: bool = False  # in the subset `make test` runs
    # Before the phase's releases are announced / after they are checked: e.g. move Sluice onto
    # Redis Sentinel for the failover, and back.
    setup: Callable[[ChaosStack], None] | None = None
    teardown: Callable[[ChaosStack], None] | None = None


@dataclass
class ReleaseCheck:
    role: str
    expected: str
    outcome: str
    problems: list[str]
    lost: int = 0
    doubled: int = 0
    resent: int = 0
    stuck: bool = False


@dataclass
class FaultResult:
    fault: Fault
    releases: list[ReleaseCheck]
    recover_s: float | None
    statuses: Counter[str]
    notes: list[str]
    checks: list[tuple[str, bool]]
    seconds: float

    @property
    def right(self) -> bool:
        return all(r.outcome == r.expected for r in self.releases)

    @property
    def errors_5xx(self) -> int:
        return self.statuses.get("5xx", 0)

    @property
    def passed(self) -> bool:
        return (
            bool(self.releases)
            and all(not r.problems for r in self.releases)
            and self.errors_5xx == 0
            and all(ok for _, ok in self.checks)
        )


# --- running a phase -------------------------------------------------------------------------------


def run_phase(fault: Fault, stack: ChaosStack, receiver: HookReceiver, say: Callable[[str], None]) -> FaultResult:
    started = time.monotonic()
    services = {r.key: s for r, s in zip(fault.roles, phase_services(fault), strict=True)}
    api = Api(stack.api_url, stack.token)
    phase = Phase(fault, stack, api, receiver, services)
    if fault.setup is not None:
        fault.setup(stack)
    try:
        return _run(fault, phase, started, say)
    finally:
        if fault.teardown is not None:
            fault.teardown(stack)


def _run(fault: Fault, phase: Phase, started: float, say: Callable[[str], None]) -> FaultResult:
    stack, api, services = phase.stack, phase.api, phase.services
    stack.start_load(list(services.values()), duration=fault.max_s + 120)
    time.sleep(WARMUP_S)
    phase.deployed_at = time.time()
    if fault.announce is not None:
        fault.announce(phase)
    else:
        for role in fault.roles:
            if not role.late:
                announce_one(phase, role.key)
    say(f"  {fault.name}: releases {', '.join(f'{k}={v}' for k, v in phase.releases.items())}")
    injector = threading.Thread(target=_inject, args=(fault, phase, say), name=f"inject-{fault.name}", daemon=True)
    injector.start()
    finals, stuck = follow(phase, fault.max_s, [r.key for r in fault.roles], say)
    phase.done.set()
    injector.join(timeout=120)
    stack.loads[-1].stop(timeout=15)
    finals = settle(phase, finals)
    checks = [
        check_release(phase, role, finals.get(role.key), role.key in stuck)
        for role in fault.roles
        if role.key in phase.releases or role.key in finals
    ]
    missing = [r.key for r in fault.roles if r.key not in phase.releases]
    for key in missing:
        checks.append(ReleaseCheck(key, _expected(fault, key), "not started", ["no release was started"], lost=1))
    recover = phase.recovered_s if phase.measures_recovery else recovery(phase, finals)
    statuses = Counter({k: v for k, v in api.statuses.items()})
    return FaultResult(fault, checks, recover, statuses, phase.notes, phase.checks, time.monotonic() - started)


def phase_services(fault: Fault) -> list[Service]:
    from scenarios.catalog import Scenario

    return [
        Service(
            Scenario(f"{fault.name}-{r.key}", fault.fault, r.expected, candidate=dict(r.candidate), traffic=r.traffic),
            r.policy,
        )
        for r in fault.roles
    ]


def announce_one(phase: Phase, role: str, attempts: int = 30) -> requests.Response | None:
    """One deploy notification, retried as CI's orb would on 503 or no answer."""
    resp = None
    for _ in range(attempts):
        resp = phase.api.deploy(phase.services[role].name)
        if resp is not None and resp.status_code in (200, 202):
            phase.releases[role] = resp.json()["release"]
            return resp
        wait = float(resp.headers.get("Retry-After", "1")) if resp is not None else 1.0
        time.sleep(min(wait, 5.0))
    return resp


def _inject(fault: Fault, phase: Phase, say: Callable[[str], None]) -> None:
    try:
        fault.inject(phase)
    except Exception as exc:  # noqa: BLE001 - a broken injector is a failed phase, not a crashed suite
        phase.notes.append(f"the injector failed: {type(exc).__name__}: {exc}")
        phase.checks.append(("fault injected", False))
        say(f"  {fault.name}: injector failed: {exc}")


def follow(
    phase: Phase, max_s: float, roles: list[str], say: Callable[[str], None]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Until every role's release has ended (roles announced late by the injector included)."""
    finals: dict[str, dict[str, Any]] = {}
    stuck: set[str] = set()
    while True:
        time.sleep(1)
        late = time.time() - phase.deployed_at > max_s
        for role in roles:
            if role in finals:
                continue
            release = phase.release(role)
            if release is not None and release["state"] in TERMINAL:
                finals[role] = release
                say(f"  {phase.fault.name}/{role}: {release['state']} after {time.time() - phase.deployed_at:.0f}s")
            elif late:
                stuck.add(role)
                rid = phase.releases.get(role)
                if rid:
                    phase.api.call("POST", f"/api/v1/releases/{rid}/abort", json={"reason": "chaos: stuck"})
                    release = phase.release(role)
                    if release is not None:
                        finals[role] = release
                say(f"  {phase.fault.name}/{role}: no verdict within {max_s:.0f}s (aborted by the harness)")
        if all(r in finals or r in stuck for r in roles):
            return finals, stuck


def settle(phase: Phase, finals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Wait for the releases' hook deliveries to finish (delivered or given up), then re-read."""
    deadline = time.time() + SETTLE_S
    while time.time() < deadline:
        fresh = {role: phase.release(role) or r for role, r in finals.items()}
        pending = [d for r in fresh.values() for d in r.get("hook_deliveries", []) if d["state"] == "pending"]
        finals = fresh
        if not pending:
            break
        time.sleep(1)
    return finals


def _expected(fault: Fault, key: str) -> str:
    return next(r.expected for r in fault.roles if r.key == key)


# --- the invariants ----------------------------------------------------------------------------------


def check_release(phase: Phase, role: Role, release: dict[str, Any] | None, stuck: bool) -> ReleaseCheck:
    if release is None:
        return ReleaseCheck(role.key, role.expected, "unreadable", ["the release could not be read"], stuck=stuck)
    outcome = "stuck" if stuck else OUTCOME.get(release["state"], release["state"])
    check = ReleaseCheck(role.key, role.expected, outcome, [], stuck=stuck)
    if outcome != role.expected:
        check.problems.append(f"{role.key}: expected {role.expected}, got {outcome} ({release.get('reason')})")
    check_events(release, check)
    check_deliveries(phase, release, check)
    check_router(phase, release, outcome, check)
    return check


def check_events(release: dict[str, Any], check: ReleaseCheck) -> None:
    events = release.get("events", [])
    types = Counter(e["type"] for e in events)
    if types["started"] != 1:
        check.problems.append(f"{types['started']} 'started' events")
        check.lost += types["started"] == 0
        check.doubled += max(0, types["started"] - 1)
    ends = sum(types[t] for t in TERMINAL)
    if ends != 1:
        check.problems.append(f"{ends} end events")
        check.doubled += max(0, ends - 1)
        check.lost += ends == 0
    # A step_passed event carries the step that starts (1-based): step k passed is "k + 1".
    passed = Counter(e["data"].get("step") for e in events if e["type"] == "step_passed")
    for step, n in passed.items():
        if n > 1:
            check.problems.append(f"step {step - 1} passed {n} times")
            check.doubled += n - 1
    if release["state"] == "succeeded":
        for step in range(2, len(STEP_SECONDS) + 1):
            if passed[step] == 0:
                check.problems.append(f"step {step - 1} never passed, yet the release succeeded")
                check.lost += 1
    # No step shorter than its duration: from its weights' confirmation to its passing.
    confirmed: dict[int, float] = {}
    for e in events:
        if e["type"] == "weights_set":
            weight = (e["data"].get("weights") or {}).get(CANDIDATE_VERSION, 0)
            if weight in STEP_WEIGHTS:
                confirmed.setdefault(STEP_WEIGHTS.index(weight), e["at"])
    for e in events:
        if e["type"] == "step_passed":
            index = e["data"].get("step", 2) - 2
        elif e["type"] == "succeeded":
            index = len(STEP_SECONDS) - 1
        else:
            continue
        start = confirmed.get(index)
        if start is not None and e["at"] - start < STEP_SECONDS[index] - 0.5:
            check.problems.append(
                f"step {index + 1} lasted {e['at'] - start:.1f}s, shorter than its {STEP_SECONDS[index]:.0f}s"
            )
            check.lost += 1
    # A router change recorded twice in a row (the same weights confirmed again with no drift
    # or router error in between) is a doubled effect.
    last: dict[str, int] | None = None
    for e in events:
        if e["type"] in ("weights_drifted", "router_error"):
            last = None
        elif e["type"] == "weights_set":
            weights = e["data"].get("weights")
            if weights == last:
                check.problems.append(f"weights {weights} confirmed twice in a row")
                check.doubled += 1
            last = weights


def check_deliveries(phase: Phase, release: dict[str, Any], check: ReleaseCheck) -> None:
    deliveries = release.get("hook_deliveries", [])
    events = release.get("events", [])
    fired = Counter(
        e["type"] for e in events if e["type"] in ("started", "step_passed", "succeeded", "failed", "aborted")
    )
    planned = Counter(d["event"] for d in deliveries)
    for event, n in fired.items():
        if planned[event] < n:
            check.problems.append(f"{n - planned[event]} '{event}' hook deliveries missing")
            check.lost += n - planned[event]
        elif planned[event] > n:
            check.problems.append(f"{planned[event] - n} '{event}' hook deliveries too many")
            check.doubled += planned[event] - n
    seen = phase.receiver.counts(release["id"])
    for d in deliveries:
        if d["state"] != "delivered":
            check.problems.append(f"delivery {d['id']} {d['state']}")
            check.lost += 1
        elif seen[d["id"]] == 0:
            check.problems.append(f"delivery {d['id']} marked delivered, never received")
            check.lost += 1
        check.resent += max(0, seen[d["id"]] - 1)


def check_router(phase: Phase, release: dict[str, Any], outcome: str, check: ReleaseCheck) -> None:
    service = release["service"]
    try:
        weights = phase.stack.haproxy_weights(service)
    except Exception as exc:  # noqa: BLE001
        check.problems.append(f"could not read HAProxy's weights: {exc}")
        return
    want = {
        "promoted": {CANDIDATE_VERSION: 100, STABLE_VERSION: 0},
        "rolled_back": {CANDIDATE_VERSION: 0, STABLE_VERSION: 100},
        "aborted": {CANDIDATE_VERSION: 0, STABLE_VERSION: 100},
        "stuck": {CANDIDATE_VERSION: 0, STABLE_VERSION: 100},
    }.get(outcome)
    if want is not None and any(weights.get(v, 0) != w for v, w in want.items()):
        check.problems.append(f"HAProxy ends at {weights}, expected {want}")


def recovery(phase: Phase, finals: dict[str, dict[str, Any]]) -> float | None:
    """From the fault's end to the first evaluation recorded after it (Sluice judging again)."""
    if phase.fault_ended is None:
        return None
    after = [e["at"] for r in finals.values() for e in r.get("evaluations", []) if e["at"] >= phase.fault_ended]
    return round(min(after) - phase.fault_ended, 1) if after else None
