"""The faults: what is done to the stack, when, and what must happen to the releases.

Each injector runs in a thread once its releases are announced; it records when the fault
began and ended (`fault_started`/`fault_ended`: the time to recover is measured from the end),
and any extra invariant it can check itself (`phase.checks`). Random moments come from a
seeded generator, so a run is repeatable in what it tries (not in where the kills land).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from benchmarks.slowloris import SlowClients
from chaos.fault_workers import SEVERAL_WORKERS
from chaos.harness import Fault, Phase, Role, announce_one
from chaos.stack import CIRCLECI_JOB, CIRCLECI_SECRET, CIRCLECI_SLUG, ChaosStack
from integrations.circleci.events import sign
from scenarios.catalog import CANDIDATE_VERSION

GOOD = Role("good", "promoted")
BAD = Role("bad", "rolled_back", candidate=(("SCN_ERROR_RATE", "0.1"),))
STORM_REQUESTS = 1000
STORM_SECONDS = 10.0
SLOW_CONNECTIONS = 200
FLEET = 20  # releases at once under random kills: half good, half bad
FLEET_KILLS = 9
MIXED_SENDERS = 30  # the mixed-intake storm: 10 each through /hooks/deploy, /hooks/circleci, /hooks/argocd


def at_step(phase: Phase, role: str, weight: int, timeout: float = 120.0) -> bool:
    """Wait until the release's candidate weight `weight` is confirmed at the router."""

    def test(release: dict[str, Any]) -> bool:
        return any(
            e["type"] == "weights_set" and (e["data"].get("weights") or {}).get(CANDIDATE_VERSION) == weight
            for e in release.get("events", [])
        )

    return phase.wait_for(role, test, timeout)


def ended(phase: Phase) -> bool:
    return phase.done.is_set()


# --- processes killed --------------------------------------------------------------------------------


def kill_worker_mid_step(phase: Phase) -> None:
    """SIGKILL the worker at random moments while both releases run; a supervisor restarts it 1 s later."""
    rng = random.Random(12)
    kills = 0
    phase.fault_started = time.time()
    while kills < 5 and not ended(phase):
        phase.sleep(rng.uniform(3.0, 8.0))
        if ended(phase):
            break
        phase.stack.kill(phase.stack.worker)
        kills += 1
        time.sleep(1.0)
        phase.stack.restart_worker()
        phase.fault_ended = time.time()
    phase.notes.append(f"{kills} SIGKILLs of the worker, each restarted 1 s later")


def kill_worker_mid_hook(phase: Phase) -> None:
    """The receiver holds the release's first `step_passed` delivery for 5 s; the worker is
    SIGKILLed while the request is in flight, and restarted 1 s later."""
    rid = phase.releases["good"]
    phase.measures_recovery = True
    rule = phase.receiver.slow_first(rid, 5.0, event="step_passed")
    while not rule.arrived.wait(0.2):
        if ended(phase):
            phase.checks.append(("the kill landed during a hook delivery", False))
            return
    phase.fault_started = time.time()
    phase.stack.kill(phase.stack.worker)
    time.sleep(1.0)
    phase.stack.restart_worker()
    phase.fault_ended = time.time()
    phase.checks.append(("the kill landed during a hook delivery", True))
    delivery = rule.delivery
    # Recovered when the interrupted delivery reaches the receiver again.
    while time.time() - phase.fault_ended < 90:
        again = [r.at for r in phase.receiver.receipts if r.delivery == delivery and r.at > phase.fault_started]
        if again:
            phase.recovered_s = round(min(again) - phase.fault_ended, 1)
            phase.notes.append(f"the interrupted delivery was sent again {phase.recovered_s:.0f}s after the restart")
            # The delivery's lease (workers/deliver.py LEASE_TTL, 10 s) ran out and it came due again.
            phase.checks.append(("sent again within 20 s of the restart", phase.recovered_s <= 20))
            return
        time.sleep(0.5)
    phase.notes.append("the interrupted delivery was not sent again within 90 s of the restart")


def kill_at_random(phase: Phase) -> None:
    """FLEET_KILLS SIGKILLs at random moments of the releases' life, each of the worker or of the web
    process (gunicorn: master and workers) at random; the killed process is restarted ~1 s later."""
    rng = random.Random(20)
    kills: list[str] = []
    phase.fault_started = time.time()
    while len(kills) < FLEET_KILLS and not ended(phase):
        phase.sleep(rng.uniform(2.0, 9.0))
        if ended(phase):
            break
        target = rng.choice(("worker", "web"))
        phase.stack.kill(phase.stack.worker if target == "worker" else phase.stack.web)
        kills.append(target)
        time.sleep(1.0)
        if target == "worker":
            phase.stack.restart_worker()
        else:
            phase.stack.start_web()  # returns once /healthz answers
        phase.fault_ended = time.time()
    at = {t: kills.count(t) for t in ("worker", "web")}
    phase.notes.append(
        f"{len(kills)} SIGKILLs ({at['worker']} of the worker, {at['web']} of gunicorn), each restarted ~1 s later"
    )


def announce_fleet(phase: Phase) -> None:
    """Every release of the phase announced at once (one sender each), retried as CI would."""
    with ThreadPoolExecutor(max_workers=len(phase.services)) as pool:
        list(pool.map(lambda role: announce_one(phase, role), list(phase.services)))


def kill_web(phase: Phase) -> None:
    """SIGKILL gunicorn (master and workers) 10 s into the release; restarted 2 s later."""
    phase.measures_recovery = True
    phase.sleep(10)
    phase.fault_started = time.time()
    phase.stack.kill(phase.stack.web)
    time.sleep(2)
    phase.stack.start_web()
    phase.fault_ended = time.time()
    phase.recovered_s = round(phase.fault_ended - phase.fault_started - 2, 1)
    phase.notes.append(f"web answered /healthz {phase.recovered_s:.1f}s after its restart began")


# --- Redis -------------------------------------------------------------------------------------------


def redis_restart(phase: Phase) -> None:
    """A clean Redis restart (SIGTERM, then start again on the same AOF) 12 s into the release."""
    phase.sleep(12)
    phase.fault_started = time.time()
    phase.stack.stop_redis()
    phase.stack.start_redis()
    phase.fault_ended = time.time()


def redis_outage(phase: Phase) -> None:
    """Redis stopped for 30 s during step 1. Meanwhile a second deploy is announced, as CI would,
    retrying on 503; /readyz is asked every second."""
    phase.sleep(12)
    phase.fault_started = time.time()
    phase.stack.stop_redis()
    intake: list[int] = []
    ready: list[int] = []
    deadline = phase.fault_started + 30
    while time.time() < deadline:
        resp = phase.api.deploy(phase.services["late"].name)
        intake.append(resp.status_code if resp is not None else 0)
        resp = phase.api.call("GET", "/readyz", timeout=5)
        ready.append(resp.status_code if resp is not None else 0)
        time.sleep(1)
    phase.stack.start_redis()
    phase.fault_ended = time.time()
    announce_one(phase, "late")
    phase.checks.append(("intake answered 503 (Retry-After) while Redis was down", set(intake) == {503}))
    phase.checks.append(("/readyz answered 503 while Redis was down", set(ready) == {503}))
    phase.notes.append(f"intake during the outage: {dict(_count(intake))}; /readyz: {dict(_count(ready))}")


def redis_freeze(phase: Phase) -> None:
    """Redis frozen (SIGSTOP) for 20 s during step 1, then SIGCONT."""
    phase.sleep(12)
    phase.fault_started = time.time()
    phase.stack.freeze(phase.stack.redis)
    statuses: list[int] = []
    deadline = phase.fault_started + 20
    while time.time() < deadline:
        resp = phase.api.call("GET", "/readyz", timeout=5)
        statuses.append(resp.status_code if resp is not None else 0)
        time.sleep(1)
    phase.stack.thaw(phase.stack.redis)
    phase.fault_ended = time.time()
    phase.notes.append(f"/readyz during the freeze: {dict(_count(statuses))} (0: no answer within 5 s)")


def sentinel_failover(phase: Phase) -> None:
    """Sluice on Redis Sentinel (the phase's setup moved it there); the master SIGKILLed 12 s into
    the release. Until the sentinels have promoted the replica and a deploy is taken, a second
    deploy is announced every 0.3 s: 503 with Retry-After is the right answer meanwhile, never 500."""
    sentinel = phase.stack.sentinel
    assert sentinel is not None, "the phase's setup did not start Sentinel"
    phase.sleep(12)
    phase.measures_recovery = True
    phase.fault_started = time.time()
    old = sentinel.kill_master()
    intake: list[int] = []
    deadline = phase.fault_started + 60
    while time.time() < deadline and "late" not in phase.releases:
        resp = phase.api.deploy(phase.services["late"].name)
        intake.append(resp.status_code if resp is not None else 0)
        if resp is not None and resp.status_code in (200, 202):
            phase.releases["late"] = resp.json()["release"]
            phase.recovered_s = round(time.time() - phase.fault_started, 1)
        time.sleep(0.3)
    new = sentinel.wait_for_new_master(old)
    phase.fault_ended = time.time()
    if "late" not in phase.releases:
        announce_one(phase, "late")
    phase.checks.append(("intake never answered 500 during the failover", all(s in (200, 202, 503) for s in intake)))
    phase.notes.append(
        f"master on :{old} SIGKILLed, the replica on :{new} promoted; intake meanwhile: {dict(_count(intake))}; "
        f"a deploy was taken again {phase.recovered_s}s after the kill"
    )


# --- Prometheus --------------------------------------------------------------------------------------


def prometheus_stop(phase: Phase) -> None:
    """Prometheus stopped for 60 s from 10 s into the releases (step 1), under on_no_data hold,
    fail and pass. Under hold no step may pass while it is down (data it no longer has); under pass
    a step may pass only on what still had data (HAProxy's counts), never on none."""
    phase.measures_recovery = True
    phase.sleep(10)
    phase.fault_started = time.time()
    phase.stack.stop_prometheus()
    phase.sleep(30)
    for role in ("hold", "fail", "pass"):  # what each release says halfway through the outage
        seen = phase.release(role) or {}
        phase.notes.append(f'{role} at +30 s: {seen.get("state")}, "{(seen.get("reason") or "")[:150]}"')
    phase.sleep(30)
    phase.stack.start_prometheus()
    phase.fault_ended = time.time()
    # Checked once the releases are over: no step passed while Prometheus was down (+ 2 s for a
    # tick that was already evaluating when it stopped).
    while not ended(phase):
        time.sleep(0.5)
    failed = phase.release("fail") or {}
    # `fail` fails a check that has no data: the first evaluations after the stop (every 2 s,
    # each query given up after Prometheus' 2 s timeout) have none. 10 s is five intervals.
    phase.checks.append(
        (
            "on_no_data fail: rolled back within 10 s of Prometheus stopping",
            failed.get("state") == "failed" and (failed.get("finished_at") or math.inf) <= phase.fault_started + 10,
        )
    )
    if failed.get("finished_at"):
        phase.notes.append(
            f"fail: ended {failed['finished_at'] - phase.fault_started:.0f}s after Prometheus stopped "
            f'(it was down {phase.fault_ended - phase.fault_started:.0f}s): "{(failed.get("reason") or "")[:160]}"'
        )
    for role in ("hold", "pass"):
        release = phase.release(role)
        if release is None:
            continue
        during = [
            e
            for e in release.get("events", [])
            if e["type"] in ("step_passed", "succeeded") and phase.fault_started + 2 <= e["at"] <= phase.fault_ended
        ]
        if role == "hold":
            phase.checks.append((f"on_no_data {role}: no step passed while Prometheus was down", not during))
        else:
            # `pass` lets what still had data decide (HAProxy's counts of errors and 4xx), never a step
            # on which no check had any: each step passed during the outage had a passing HAProxy count.
            evaluations = release.get("evaluations", [])
            on_router = [
                e
                for e in during
                if any(
                    abs(v["at"] - e["at"]) <= 1.0 and v["verdict"] == "pass" and "[HAProxy]" in (v.get("detail") or "")
                    for v in evaluations
                )
            ]
            phase.checks.append(
                (
                    f"on_no_data {role}: a step passed while Prometheus was down only on HAProxy's counts "
                    f"({len(during)} passed, {len(on_router)} with them)",
                    len(on_router) == len(during),
                )
            )
        after = [
            e["at"]
            for e in release.get("events", [])
            if e["type"] in ("step_passed", "succeeded") and e["at"] > phase.fault_ended
        ]
        if after:
            moved = round(min(after) - phase.fault_ended, 1)
            phase.notes.append(f"on_no_data {role}: next step passed {moved:.0f}s after Prometheus was back")
            # Recovered: the releases that waited move on again (the slowest of them).
            phase.recovered_s = max(phase.recovered_s or 0.0, moved)


# --- HAProxy -----------------------------------------------------------------------------------------


def haproxy_reload(phase: Phase) -> None:
    """HAProxy reloaded 3 s into step 2 (50%): its runtime weights go back to the configuration
    file's (stable 100%). Sluice must notice and set 50/50 again."""
    if not at_step(phase, "good", 50):
        phase.checks.append(("the release reached step 2 for the reload", False))
        return
    phase.sleep(3)
    phase.measures_recovery = True
    service = phase.services["good"].name
    others = {s: phase.stack.haproxy_weights(s) for s in _finished_services(phase)}
    phase.fault_started = time.time()
    phase.stack.reload_haproxy()
    phase.fault_ended = time.time()
    after = phase.stack.haproxy_weights(service)
    phase.notes.append(f"right after the reload HAProxy showed {after}")
    deadline = time.time() + 30
    while time.time() < deadline:
        if phase.stack.haproxy_weights(service).get(CANDIDATE_VERSION) == 50:
            phase.recovered_s = round(time.time() - phase.fault_ended, 1)
            break
        time.sleep(0.1)
    phase.checks.append(("50/50 set again within 30 s of the reload", phase.recovered_s is not None))
    release = phase.release("good") or {}
    drift = [e for e in release.get("events", []) if e["type"] == "weights_drifted"]
    phase.checks.append(("a 'weights_drifted' event was recorded", bool(drift)))
    if drift:
        phase.notes.append(f"event: {drift[0]['message']}")
    reverted = [s for s, w in others.items() if phase.stack.haproxy_weights(s) != w]
    if reverted:
        phase.notes.append(
            f"{len(reverted)} of {len(others)} services whose releases had ended went back to the configuration "
            "file's weights (Sluice watches weights only while a release runs)"
        )


def _finished_services(phase: Phase) -> list[str]:
    mine = {s.name for s in phase.services.values()}
    return [s.name for s in phase.stack.services if s.name not in mine]


# --- intake and web ----------------------------------------------------------------------------------


def storm(phase: Phase) -> None:
    """1,000 identical deploy notifications in 10 s from 20 senders: one release."""
    service = phase.services["good"].name
    ids: set[str] = set()
    statuses: list[int] = []
    lock = threading.Lock()
    per_sender = STORM_REQUESTS // 20
    start = time.time()

    def sender(i: int) -> None:
        for k in range(per_sender):
            time.sleep(max(0.0, start + (k * 20 + i) * STORM_SECONDS / STORM_REQUESTS - time.time()))
            resp = phase.api.deploy(service)
            with lock:
                statuses.append(resp.status_code if resp is not None else 0)
                if resp is not None and resp.status_code in (200, 202):
                    ids.add(resp.json()["release"])

    phase.measures_recovery = True  # nothing to recover from
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(20)]
    phase.fault_started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.fault_ended = time.time()
    if ids:
        phase.releases["good"] = sorted(ids)[0]
    listed = phase.api.call("GET", f"/api/v1/releases?service={service}&limit=50")
    n_listed = len(listed.json()["releases"]) if listed is not None and listed.status_code == 200 else -1
    phase.checks.append((f"{len(statuses)} notifications made one release", len(ids) == 1 and n_listed == 1))
    phase.notes.append(
        f"{len(statuses)} notifications in {phase.fault_ended - phase.fault_started:.1f}s: answers "
        f"{dict(_count(statuses))}; release ids returned: {len(ids)}; releases listed for the service: {n_listed}"
    )


def mixed_storm(phase: Phase) -> None:
    """The same version announced at once by MIXED_SENDERS senders, a third each through
    POST /hooks/deploy (the orb), /hooks/circleci (a signed job-completed webhook; CircleCI sends
    one per event, so each sender is another event of the same pipeline) and /hooks/argocd (a
    Succeeded sync): one release."""
    service = phase.services["good"].name
    number = int(CANDIDATE_VERSION.rsplit(".", 1)[1])  # version template 1.0.{pipeline.number}
    workflow, pipeline = str(uuid.uuid4()), str(uuid.uuid4())
    ids: set[str] = set()
    statuses: dict[str, list[int]] = {"deploy": [], "circleci": [], "argocd": []}
    lock = threading.Lock()
    barrier = threading.Barrier(MIXED_SENDERS)
    final: dict[int, int] = {}  # sender -> its last answer

    def circleci() -> requests.Response | None:
        body = json.dumps(_job_completed(CIRCLECI_SLUG.format(service=service), number, workflow, pipeline)).encode()
        headers = {
            "Content-Type": "application/json",
            "circleci-event-type": "job-completed",
            "circleci-signature": f"v1={sign(CIRCLECI_SECRET, body)}",
        }
        return phase.api.call("POST", "/hooks/circleci", data=body, headers=headers)

    def argocd(i: int) -> requests.Response | None:
        # One sync notified several times (Argo CD retries, several triggers), some Content-Type-less.
        note = {"app": service, "revision": CANDIDATE_VERSION, "finishedAt": f"2026-11-30T04:0{i % 3}:00Z"}
        return phase.api.call("POST", "/hooks/argocd", json={**note, "phase": "Succeeded"})

    def send(kind: str, i: int) -> requests.Response | None:
        return phase.api.deploy(service) if kind == "deploy" else circleci() if kind == "circleci" else argocd(i)

    def sender(i: int) -> None:
        kind = ("deploy", "circleci", "argocd")[i % 3]
        barrier.wait()
        for _ in range(3):
            try:
                resp = send(kind, i)
            except Exception:  # noqa: BLE001 - a sender that broke counts as no answer
                resp = None
            code = resp.status_code if resp is not None else 0
            with lock:
                statuses[kind].append(code)
                if resp is not None and code in (200, 202) and resp.json().get("release"):
                    ids.add(resp.json()["release"])
                final[i] = code
            # A repeat of one event while its first delivery is processed: 409 + Retry-After, and the
            # sender (Argo CD, CircleCI) retries: then it must get 200 and the same release.
            if code != 409 or resp is None or not resp.headers.get("Retry-After"):
                return
            time.sleep(min(float(resp.headers["Retry-After"]), 10.0))

    phase.measures_recovery = True  # nothing to recover from
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(MIXED_SENDERS)]
    phase.fault_started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.fault_ended = time.time()
    if ids:
        phase.releases["good"] = sorted(ids)[0]
    listed = phase.api.call("GET", f"/api/v1/releases?service={service}&limit=50")
    n_listed = len(listed.json()["releases"]) if listed is not None and listed.status_code == 200 else -1
    answered = len(final) == MIXED_SENDERS and set(final.values()) <= {200, 202}
    phase.checks.append(("every sender's announcement taken in the end (200/202)", answered))
    one = len(ids) == 1 and n_listed == 1
    phase.checks.append((f"{MIXED_SENDERS} announcements through 3 paths made one release", one))
    phase.notes.append(
        "answers: "
        + "; ".join(f"{k} {dict(_count(v))}" for k, v in statuses.items())
        + f"; release ids returned: {len(ids)}; releases listed for the service: {n_listed}"
    )


def _job_completed(slug: str, number: int, workflow: str, pipeline: str) -> dict[str, Any]:
    """A successful deploy job's job-completed webhook, shaped like CircleCI's documented sample
    (tests/support/ci.py): a new event id each time, the same pipeline and workflow."""
    org, repo = slug.split("/", 1)[1].split("/")
    return {
        "id": str(uuid.uuid4()),
        "type": "job-completed",
        "happened_at": "2026-11-30T04:05:16.000Z",
        "webhook": {"id": str(uuid.uuid4()), "name": "sluice"},
        "project": {"id": str(uuid.uuid4()), "name": repo, "slug": slug},
        "organization": {"id": str(uuid.uuid4()), "name": org},
        "workflow": {
            "id": workflow,
            "name": "release",
            "created_at": "2026-11-30T04:01:00.000Z",
            "stopped_at": "2026-11-30T04:05:15.000Z",
            "url": f"https://app.circleci.com/pipelines/github/{org}/{repo}/{number}/workflows/{workflow}",
        },
        "pipeline": {
            "id": pipeline,
            "number": number,
            "created_at": "2026-11-30T04:00:59.000Z",
            "trigger": {"type": "webhook"},
            "vcs": {
                "provider_name": "github",
                "origin_repository_url": f"https://github.com/{org}/{repo}",
                "target_repository_url": f"https://github.com/{org}/{repo}",
                "revision": "f9b5a4ad9c2b1e7d3c0a8e6f5d4c3b2a19081726",
                "branch": "main",
                "commit": {"subject": "chaos", "author": {"name": "Dev", "email": "dev@example.com"}},
            },
        },
        "job": {
            "id": str(uuid.uuid4()),
            "name": CIRCLECI_JOB,
            "started_at": "2026-11-30T04:04:00.000Z",
            "stopped_at": "2026-11-30T04:05:15.000Z",
            "status": "success",
            "number": 1234,
        },
    }


def slow_clients(phase: Phase) -> None:
    """200 slow connections (benchmarks/slowloris.py) held on the web process for the whole
    release; meanwhile /healthz and a deploy notification, each on a new connection, are timed."""
    port = int(phase.stack.api_url.rsplit(":", 1)[1])
    slow = SlowClients(port, SLOW_CONNECTIONS).start()
    phase.measures_recovery = True  # the probes' latencies say it
    phase.fault_started = time.time()
    timings: dict[str, list[float]] = {"GET /healthz": [], "POST /hooks/deploy": []}
    failures = 0
    calls: dict[str, Callable[[], requests.Response | None]] = {
        "GET /healthz": lambda: phase.api.call("GET", "/healthz", timeout=5),
        "POST /hooks/deploy": lambda: phase.api.deploy(phase.services["good"].name),
    }
    held = 0
    while not ended(phase):
        for name, call in calls.items():
            t0 = time.perf_counter()
            resp = call()
            timings[name].append((time.perf_counter() - t0) * 1000)
            failures += resp is None or resp.status_code >= 300
        held = max(held, slow.open)
        time.sleep(0.2)
    slow.stop()
    phase.fault_ended = time.time()
    phase.checks.append(("every probe answered 2xx despite the slow clients", failures == 0))
    for name, values in timings.items():
        if values:
            values.sort()
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            phase.notes.append(
                f"{name}: {len(values)} answers, p50 {statistics.median(values):.0f} ms, p99 {p99:.0f} ms, "
                f"max {values[-1]:.0f} ms"
            )
    phase.notes.append(f"up to {held} slow connections held; {failures} probes failed")


def _count(values: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _announce_storm(phase: Phase) -> None:
    storm(phase)


def _announce_mixed(phase: Phase) -> None:
    mixed_storm(phase)


def _fleet() -> tuple[Role, ...]:
    return tuple(
        dataclasses.replace(
            BAD if i % 2 else GOOD, key=f"{'bad' if i % 2 else 'good'}-{i // 2 + 1:02d}", traffic="fleet"
        )
        for i in range(FLEET)
    )


def _to_sentinel(stack: ChaosStack) -> None:
    stack.start_sentinel()


def _from_sentinel(stack: ChaosStack) -> None:
    stack.leave_sentinel()


FAULTS: list[Fault] = [
    Fault(
        "releases-under-kills",
        f"{FLEET_KILLS} SIGKILLs, each of the worker or of gunicorn at random, restarted ~1 s later",
        f"random moments over {FLEET} releases announced at once",
        f"{FLEET // 2} good promoted, {FLEET // 2} bad rolled back; nothing lost or doubled, none stuck",
        _fleet(),
        kill_at_random,
        announce=announce_fleet,
        max_s=300.0,
    ),
    SEVERAL_WORKERS,
    Fault(
        "worker-kill-mid-step",
        "SIGKILL the worker (5 times, at random moments)",
        "steps 1-2 of a good and a bad release",
        "good promoted, bad rolled back; each kill costs at most one lease (10 s)",
        (GOOD, BAD),
        kill_worker_mid_step,
    ),
    Fault(
        "worker-kill-mid-hook",
        "SIGKILL the worker during a hook delivery",
        "while the receiver holds the first step_passed delivery",
        "promoted; the delivery is sent again (same id) within about its 10 s lease, and recorded once",
        (GOOD,),
        kill_worker_mid_hook,
    ),
    Fault(
        "web-kill",
        "SIGKILL gunicorn (master and workers), restart 2 s later",
        "10 s into the release",
        "promoted; the API answers again once restarted",
        (GOOD,),
        kill_web,
    ),
    Fault(
        "redis-restart",
        "Redis restarted (SIGTERM, start on the same AOF)",
        "12 s into the release (step 1)",
        "promoted; nothing lost",
        (GOOD,),
        redis_restart,
    ),
    Fault(
        "redis-outage-30s",
        "Redis stopped for 30 s; a second deploy announced during it",
        "12 s into the release (step 1)",
        "both promoted; intake and /readyz 503 with Retry-After while down, never 500",
        (GOOD, Role("late", "promoted", late=True)),
        redis_outage,
        max_s=300.0,
    ),
    Fault(
        "redis-freeze-20s",
        "Redis frozen (SIGSTOP) for 20 s",
        "12 s into the release (step 1)",
        "promoted",
        (GOOD,),
        redis_freeze,
    ),
    Fault(
        "prometheus-stop-60s",
        "Prometheus stopped for 60 s, under on_no_data hold / fail / pass",
        "10 s into the releases (step 1)",
        "hold: holds, promoted after; fail: rolled back within 10 s; "
        "pass: promoted, steps passing only on HAProxy's counts",
        (
            Role("hold", "promoted", policy="chaos-hold"),
            Role("fail", "rolled_back", policy="chaos-fail"),
            Role("pass", "promoted", policy="chaos-pass"),
        ),
        prometheus_stop,
        max_s=300.0,
    ),
    Fault(
        "haproxy-reload",
        "HAProxy reloaded (new process, -sf): runtime weights reset to the file's",
        "3 s into step 2 (50%)",
        "promoted; the drift noticed and 50/50 set again within an interval",
        (GOOD,),
        haproxy_reload,
        fast=True,
    ),
    Fault(
        "deploy-storm",
        f"{STORM_REQUESTS:,} identical deploy notifications in {STORM_SECONDS:.0f} s (20 senders)",
        "the release's announcement",
        "one release, promoted",
        (GOOD,),
        lambda phase: None,
        announce=_announce_storm,
    ),
    Fault(
        "mixed-intake-storm",
        f"one version announced by {MIXED_SENDERS} senders at once through /hooks/deploy, "
        "/hooks/circleci (signed job-completed) and /hooks/argocd",
        "the release's announcement",
        "one release, promoted",
        (GOOD,),
        lambda phase: None,
        announce=_announce_mixed,
    ),
    Fault(
        "slow-clients",
        f"{SLOW_CONNECTIONS} slow clients (headers trickled, benchmarks/slowloris.py) on the web process",
        "the whole release",
        "promoted; /healthz and deploy notifications answered",
        (GOOD,),
        slow_clients,
    ),
    Fault(
        "sentinel-failover",
        "Sluice on Redis Sentinel (master, replica, 3 sentinels); the master SIGKILLed, a deploy announced meanwhile",
        "12 s into the release (step 1)",
        "both promoted; intake 503 with Retry-After (never 500) until the replica is promoted",
        (GOOD, Role("late", "promoted", late=True)),
        sentinel_failover,
        max_s=300.0,
        setup=_to_sentinel,
        teardown=_from_sentinel,
    ),
]


def by_name(names: list[str]) -> list[Fault]:
    known = {f.name: f for f in FAULTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
