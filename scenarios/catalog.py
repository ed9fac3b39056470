"""The release scenarios: what a careful SRE would try a release agent on.

Each scenario is one service (`scn-<name>`) with a stable and a candidate version, both
app.cli.demo.scenario_service under gunicorn, configured by SCN_* environment variables; a
traffic pattern; events during the release; the expected outcome; and, for bad versions, a
detection deadline in seconds from the candidate's first traffic to its rollback.

Timers in the service (warm-up, crash, metrics stop) count from the process's first request.
Fault rates are deterministic counters, so every run sends the same faults.

The policies under test (scenarios/policies/) evaluate every 2 s with steps of 20 s (10%),
15 s (50%) and 10 s (100%); Prometheus scrapes every 1 s; HAProxy's `timeout server` is 3 s.
Deadlines: >= 50% errors within one interval + one scrape + 1 s (4 s: issue #10's goal);
crashes within ~10 s of the crash; small regressions by the detection times docs/judging.md
documents for a candidate at 10% of 40 req/s (4 req/s): issue #10 asked for +2 points within
30 s, which no test that keeps identical versions' false rollbacks under 1% can do with ~120
candidate requests (see docs/judging.md, "What cannot be detected quickly").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from scenarios.load import Pattern

# `short_of_evidence`: a good version whose traffic cannot give the evidence promotion asks for within
# the policy's timeouts (docs/judging.md, the promotion floor's table): promoted, or failed for lack of
# evidence at `judge.evidence_timeout` — never failed by a check, never left running.
Expected = Literal["promoted", "rolled_back", "either", "short_of_evidence"]

STEADY = Pattern(rate=40)
LOW = Pattern(rate=2)
VERY_LOW = Pattern(rate=0.25)
SPIKY = Pattern(rate=15, burst_rate=120, burst_every_s=10, burst_s=2)  # ~36 req/s on average
# The chaos suite's 20 releases at once: 40 req/s each (800 in all) is more than a shared
# two-core machine serves through HAProxy, so most requests went unanswered; 10 each is 200.
FLEET = Pattern(rate=10)
PATTERNS = {"steady": STEADY, "low": LOW, "very-low": VERY_LOW, "spiky": SPIKY, "fleet": FLEET}

STABLE_VERSION, CANDIDATE_VERSION = "1.0.0", "1.0.1"
BASE = {"SCN_LATENCY_MS": "15", "SCN_JITTER_MS": "10"}  # 15-25 ms, like the demo's stable
# 30-90 ms (median 60, over the 25/50/100 ms buckets) and 6% at 150 ms: stable's 95th percentile is
# past 100 ms, so the slow bound is 250 ms, and a version slower across the board that stays under it
# is the latency comparison's to catch (the slow share over 250 ms does not move).
SPREAD = {"SCN_LATENCY_MS": "30", "SCN_JITTER_MS": "60", "SCN_SLOW_RATE": "0.06", "SCN_SLOW_MS": "150"}


@dataclass(frozen=True)
class Event:
    """Something the harness does `at` seconds after the deploy notification."""

    at: float
    kind: Literal["spike_on", "spike_off"]
    value: float = 0.0  # spike_on: milliseconds added to both versions


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expected: Expected
    stable: dict[str, str] = field(default_factory=dict)
    candidate: dict[str, str] = field(default_factory=dict)
    traffic: str = "steady"
    deadline_s: float | None = None  # bad versions: from the candidate's first traffic to rollback
    events: tuple[Event, ...] = ()
    restart_after_s: float | None = None  # crash-loop: the harness restarts a crashed candidate after this
    shared_spike: bool = False  # both versions read one spike file
    threads: int = 4  # gunicorn threads per version (slow answers hold a thread)
    max_s: float = 300.0  # the harness aborts a release still running this long after its deploy
    fast: bool = False  # in the fast subset run by `make test`

    @property
    def service(self) -> str:
        return f"scn-{self.name}"

    @property
    def pattern(self) -> Pattern:
        return PATTERNS[self.traffic]

    def env(self, which: Literal["stable", "candidate"]) -> dict[str, str]:
        return {**BASE, **(self.stable if which == "stable" else self.candidate)}


def _errors(rate: str) -> dict[str, str]:
    return {"SCN_ERROR_RATE": rate}


SCENARIOS: list[Scenario] = [
    # --- good versions: must be promoted ------------------------------------------------------
    Scenario(
        "good-steady",
        "identical behaviour, slightly faster; 40 req/s",
        "promoted",
        candidate={"SCN_LATENCY_MS": "12"},
        fast=True,
    ),
    Scenario(
        "good-low-traffic",
        "good, on a service with ~2 req/s in total: the promotion floor needs ~1,200 of its requests (10 min"
        " at 100%), more than a step's evidence timeout (3 min): promoted, or failed for lack of evidence",
        "short_of_evidence",
        traffic="low",
        max_s=600,  # three steps' evidence timeouts (3 min each) and their durations
    ),
    Scenario(
        "good-warmup",
        "good, but 800 ms slow for its first 10 s of traffic (cold caches, JIT)",
        "promoted",
        candidate={"SCN_WARMUP_S": "10", "SCN_WARMUP_LATENCY_MS": "800"},
        threads=8,
        fast=True,
    ),
    Scenario(
        "good-shared-spike",
        "good; at t=20 s a shared dependency adds 600 ms to stable and candidate alike, for 15 s",
        "promoted",
        shared_spike=True,
        events=(Event(20, "spike_on", 600), Event(35, "spike_off")),
        threads=32,
    ),
    Scenario(
        "good-background-errors",
        "stable and candidate both answer 1% 5xx",
        "promoted",
        stable=_errors("0.01"),
        candidate=_errors("0.01"),
    ),
    Scenario(
        "good-within-margin",
        "stable 1% 5xx, candidate 1.2% (0.2 point worse: within every margin)",
        "promoted",
        stable=_errors("0.01"),
        candidate=_errors("0.012"),
    ),
    Scenario("good-spiky", "good, under bursty traffic (15 req/s with 120 req/s bursts)", "promoted", traffic="spiky"),
    Scenario(
        "good-legit-404s",
        "both versions answer 5% 404 (requests for missing things: the service's normal)",
        "promoted",
        stable={"SCN_CLIENT_ERROR_RATE": "0.05"},
        candidate={"SCN_CLIENT_ERROR_RATE": "0.05"},
    ),
    Scenario(
        "good-very-low-traffic",
        "good, at 0.25 req/s: never enough evidence within a step; hold, then fail for lack of traffic"
        " at a timeout (or promote)",
        "short_of_evidence",
        traffic="very-low",
        max_s=240,  # the evidence timeout of a 20 s step is 3 minutes
    ),
    # --- bad versions: must be rolled back by the deadline ------------------------------------
    Scenario(
        "bad-errors-50",
        "50% 5xx",
        "rolled_back",
        candidate=_errors("0.5"),
        deadline_s=4,
    ),
    Scenario(
        "bad-errors-100",
        "every request a 500",
        "rolled_back",
        candidate=_errors("1"),
        deadline_s=4,
        fast=True,
    ),
    Scenario(
        "bad-errors-plus-3",
        "stable 0.5% 5xx, candidate 3.5% (+3 points)",
        "rolled_back",
        stable=_errors("0.005"),
        candidate=_errors("0.035"),
        deadline_s=180,
    ),
    Scenario(
        "bad-errors-plus-2",
        "stable 0.5% 5xx, candidate 2.5% (+2 points)",
        "rolled_back",
        stable=_errors("0.005"),
        candidate=_errors("0.025"),
        deadline_s=240,
    ),
    Scenario(
        "borderline-errors-plus-1",
        "stable 0.5% 5xx, candidate 1.5% (+1 point: exactly at a 1-point margin; detection time reported)",
        "either",
        stable=_errors("0.005"),
        candidate=_errors("0.015"),
    ),
    Scenario(
        "bad-4xx-all",
        "answers 404 to everything (a broken route)",
        "rolled_back",
        candidate={"SCN_CLIENT_ERROR_RATE": "1"},
        deadline_s=10,
        fast=True,
    ),
    Scenario(
        "bad-4xx-10pct",
        "answers 400 to 10% of requests (a validation regression)",
        "rolled_back",
        candidate={"SCN_CLIENT_ERROR_RATE": "0.1", "SCN_CLIENT_ERROR_CODE": "400"},
        deadline_s=60,
    ),
    Scenario(
        "bad-timeouts-3pct",
        "3% of requests hang 4 s: HAProxy cuts them at 3 s (504 to the client); the app records slow 200s",
        "rolled_back",
        candidate={"SCN_TIMEOUT_RATE": "0.03", "SCN_TIMEOUT_S": "4"},
        deadline_s=120,
        threads=12,
        fast=True,
    ),
    Scenario(
        "bad-crash-15s",
        "crashes 15 s after its first request and stays down",
        "rolled_back",
        candidate={"SCN_CRASH_AFTER_S": "15"},
        deadline_s=25,
    ),
    Scenario(
        "bad-crash-loop",
        "crashes 6 s after each start of traffic; restarted 2 s later (counters reset each time)",
        "rolled_back",
        candidate={"SCN_CRASH_AFTER_S": "6"},
        restart_after_s=2,
        deadline_s=30,
        fast=True,
    ),
    Scenario(
        "bad-metrics-gone",
        "30% 5xx, and /metrics answers 404 from its first request on (the proxy still sees the errors)",
        "rolled_back",
        candidate={**_errors("0.3"), "SCN_METRICS_STOP_AFTER_S": "0"},
        deadline_s=20,
    ),
    Scenario(
        "bad-slow-p90-2x",
        "twice as slow (100-150 ms -> 200-300 ms): p90 doubles, all still under 500 ms",
        "rolled_back",
        stable={"SCN_LATENCY_MS": "100", "SCN_JITTER_MS": "50"},
        candidate={"SCN_LATENCY_MS": "200", "SCN_JITTER_MS": "100"},
        deadline_s=30,
        threads=24,
    ),
    Scenario(
        "bad-slow-tail",
        "stable: 1% of requests take 1 s; candidate: 6% (+5 points of slow responses)",
        "rolled_back",
        stable={"SCN_SLOW_RATE": "0.01", "SCN_SLOW_MS": "1000"},
        candidate={"SCN_SLOW_RATE": "0.06", "SCN_SLOW_MS": "1000"},
        deadline_s=180,
        threads=12,
    ),
    # --- issue #22: slower across the distribution, and kinds of bad that build up or come late ----
    # Deadlines: max(what a careful SRE wants, 2x the oracle, Wald's SPRT knowing both versions).
    # Where the candidate does what stable never does (a response over 100 ms, a 1 s spike, a 503)
    # the oracle needs one such response, a few seconds: the SRE's "before it is promoted" (60-90 s,
    # the release takes ~45 s) rules. A regression just over a margin (20% slower, 2% errors against
    # 0.5%) is never promoted -- the promotion floor holds it -- and at the latest the evidence
    # timeout (3 minutes at 100%) rolls it back: 240 s, as bad-errors-plus-2.
    # Stable answers in 30-90 ms (median 60, buckets 25/50/100 ms). The whole-distribution comparison
    # (docs/judging.md) fails a version more than 10% slower; "a few percent" passes.
    Scenario(
        "good-3pct-slower",
        "3% slower across the board (median 60 -> 62 ms): within the latency margin",
        "promoted",
        stable=SPREAD,
        candidate={**SPREAD, "SCN_LATENCY_MS": "30.9", "SCN_JITTER_MS": "61.8", "SCN_SLOW_MS": "154.5"},
        threads=12,
    ),
    Scenario(
        "bad-latency-35pct",
        "every response 35% slower, same shape (median 60 -> 81 ms, tail 150 -> 202 ms): none over the slow bound",
        "rolled_back",
        stable=SPREAD,
        candidate={**SPREAD, "SCN_LATENCY_MS": "40.5", "SCN_JITTER_MS": "81", "SCN_SLOW_MS": "202"},
        deadline_s=90,
        threads=12,
    ),
    Scenario(
        "bad-latency-warm-then-20pct",
        "1.7x slower for its first 30 s, then stays 20% slower (a partial recovery; tail 150 -> 200 ms)",
        "rolled_back",
        stable=SPREAD,
        candidate={
            **SPREAD,
            "SCN_LATENCY_MS": "51",
            "SCN_JITTER_MS": "102",
            "SCN_SLOW_MS": "200",
            "SCN_LATER_AFTER_S": "30",
            "SCN_LATER_LATENCY_MS": "36",
            "SCN_LATER_JITTER_MS": "72",
        },
        deadline_s=240,
        threads=12,
    ),
    Scenario(
        "bad-wider-spread",
        "same median (60 ms), spread 50-70 -> 10-110 ms: a tenth of responses over 100 ms",
        "rolled_back",
        stable={"SCN_LATENCY_MS": "50", "SCN_JITTER_MS": "20"},
        candidate={"SCN_LATENCY_MS": "10", "SCN_JITTER_MS": "100"},
        deadline_s=60,
        threads=12,
    ),
    Scenario(
        "bad-tail-spikes",
        "from 20 s to 45 s after its first traffic, 10% of responses take 1 s (a window of tail spikes)",
        "rolled_back",
        candidate={
            "SCN_SLOW_MS": "1000",
            "SCN_LATER_AFTER_S": "20",
            "SCN_LATER_UNTIL_S": "45",
            "SCN_LATER_SLOW_RATE": "0.1",
        },
        deadline_s=60,
        threads=12,
    ),
    Scenario(
        "bad-slow-drift",
        "latency drifts up 1 ms every second (15-25 ms at first, 35-45 ms 20 s later)",
        "rolled_back",
        candidate={"SCN_DRIFT_MS_PER_S": "1"},
        deadline_s=60,
    ),
    Scenario(
        "bad-breaks-under-load",
        "fine at 10% of traffic (4 req/s); over 10 req/s (the 50% step) 20% of requests get a 503",
        "rolled_back",
        candidate={"SCN_BUSY_RPS": "10", "SCN_BUSY_ERROR_RATE": "0.2"},
        deadline_s=45,
    ),
    Scenario(
        "bad-errors-growing",
        "stable 0.5% 5xx; the candidate's errors grow by 0.2 points a second (4% at 20 s, 7% at 35 s)",
        "rolled_back",
        stable=_errors("0.005"),
        candidate={"SCN_ERROR_GROWTH_PER_S": "0.002"},
        deadline_s=90,
    ),
    Scenario(
        "bad-errors-partial-recovery",
        "stable 0.5% 5xx; the candidate answers 5% 5xx for 15 s, then 2% (four times stable's)",
        "rolled_back",
        stable=_errors("0.005"),
        candidate={**_errors("0.05"), "SCN_LATER_AFTER_S": "15", "SCN_LATER_ERROR_RATE": "0.02"},
        deadline_s=240,
    ),
    Scenario(
        "bad-several-small",
        "small shifts at once: 5xx 0.5% -> 1.5%, 4xx 2% -> 4%, 20% slower",
        "rolled_back",
        stable={**_errors("0.005"), "SCN_CLIENT_ERROR_RATE": "0.02", **SPREAD},
        candidate={
            **_errors("0.015"),
            "SCN_CLIENT_ERROR_RATE": "0.04",
            **SPREAD,
            "SCN_LATENCY_MS": "36",
            "SCN_JITTER_MS": "72",
            "SCN_SLOW_MS": "180",
        },
        deadline_s=300,  # each shift alone is held, not failed at once: a held step, then the evidence timeout
        max_s=360,
        threads=12,
    ),
    Scenario(
        "bad-errors-spiky",
        "10% 5xx under bursty traffic",
        "rolled_back",
        candidate=_errors("0.1"),
        traffic="spiky",
        deadline_s=30,
    ),
    Scenario(
        "bad-errors-low-traffic",
        "50% 5xx on a service with ~2 req/s in total",
        "rolled_back",
        candidate=_errors("0.5"),
        traffic="low",
        deadline_s=60,
    ),
]

FAST = [s for s in SCENARIOS if s.fast]


def by_name(names: list[str]) -> list[Scenario]:
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
