"""The release and what is observed about it: plain data, serialisable to JSON for Redis and the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# baking: promoted, still judged against the previous version's history (app/core/bake.py).
ReleaseState = Literal["pending", "running", "paused", "baking", "succeeded", "failed", "aborted"]
# shadow: judged like any release, but the router is never changed (app/release/shadow.py).
ReleaseMode = Literal["live", "shadow"]
ShadowHooks = Literal["marked", "none"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "aborted"})
# insufficient: not enough evidence yet either way (holds the step; never fails, never passes).
Verdict = Literal["pass", "fail", "no_data", "insufficient"]


class CIContext(BaseModel):
    """Where the deploy came from, so hooks can talk back to CI (all optional)."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(None, max_length=64)
    project_slug: str | None = Field(None, max_length=256, pattern=r"^[A-Za-z0-9_.\-/]+$")
    workflow_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
    pipeline_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
    pipeline_number: int | None = Field(None, ge=0)
    job_number: int | None = Field(None, ge=0)
    job_name: str | None = Field(None, max_length=128)
    build_url: str | None = Field(None, max_length=1024, pattern=r"^https?://")


class Release(BaseModel):
    """One attempt to move a service from its stable version to a candidate.

    `seq` counts decisions; a tick carries the seq it was scheduled for, so a duplicated or
    stale tick sees a different seq and does nothing. `desired_weights` is what the router
    must show; `weights_applied` is False between recording a decision and the router
    confirming it, so a crash in between is repaired by the next tick.
    """

    id: str
    application: str
    namespace: str
    service: str
    source_version: str
    target_version: str
    policy: str
    state: ReleaseState = "pending"
    step: int = -1
    step_started_at: float | None = None
    seq: int = 0
    consecutive_failures: int = 0
    resumed_step: int = -1
    no_data_since: float | None = None
    # When the next shift began waiting for the candidate to be ready (app/core/readiness.py).
    unready_since: float | None = None
    desired_weights: dict[str, int] = Field(default_factory=dict)
    weights_applied: bool = True
    reason: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    next_tick_at: float | None = None
    ci: CIContext = Field(default_factory=CIContext)
    trigger: str = "webhook"
    actor: str | None = Field(
        None, description="Who asked for it: a rollback's requester, or who forced a known-bad version."
    )
    hooks: list[str] = Field(default_factory=list, description="ids of hook deliveries")
    mode: ReleaseMode = Field(
        "live",
        description="shadow: every check and verdict, but the router is never changed "
        "(docs/configuration.md: Shadow mode).",
    )
    shadow_hooks: ShadowHooks = Field(
        "marked", description="A shadow release's hooks: sent marked `shadow: true`, or none at all."
    )
    observed_weights: dict[str, int] | None = Field(
        None, description="Shadow releases: the router's weights as last read (what the candidate really gets)."
    )
    judge: JudgeState = Field(default_factory=lambda: JudgeState())
    bake_started_at: float | None = Field(None, description="When the bake after promotion began (docs/bake.md).")
    bake_until: float | None = Field(None, description="When the bake ends, if nothing is found (Unix time).")
    fleet: str | None = Field(None, description="The fleet this release is a member of (docs/fleets.md).")

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def traffic_weights(self) -> dict[str, int]:
        """The weights the versions really have: what a live release set, what a shadow release
        last read from the router (it sets nothing; until it has read, the candidate has none)."""
        if self.shadow:
            return dict(self.observed_weights or {})
        return self.desired_weights

    def stable_weights(self) -> dict[str, int]:
        """All traffic on stable. The candidate is not named: the router sets every version it
        does not name to 0, and this works even when the candidate never reached the router."""
        return {self.source_version: 100}

    def weights_for(self, candidate_weight: int) -> dict[str, int]:
        return {self.source_version: 100 - candidate_weight, self.target_version: candidate_weight}


class CarriedHistogram(BaseModel):
    """A latency histogram kept in the judge state: JSON has no +Inf, so the responses counted in
    all are kept apart from the cumulative counts at the finite bounds."""

    finite: list[tuple[float, float]] = Field(default_factory=list)
    total: float = 0.0


class JudgeState(BaseModel):
    """What the judge carries from one evaluation to the next (app/core/judge/judging.py).

    `evidence` is each comparison's log e-value at the end of the last step passed (a record: each
    step is tested on its own counts). `baseline` is stable's
    (bad, requests) per comparison from the steps already passed: the reference when stable has
    no live traffic (the 100% step). `candidate` is the candidate's (bad, requests) from the same
    steps: at the last step, "is it good enough to promote?" is asked of everything it served.
    `router_mark` is the router's counters when the current step's weights were confirmed (counts
    are taken since then)."""

    first_traffic_at: float | None = None
    evidence: dict[str, float] = Field(default_factory=dict)
    baseline: dict[str, tuple[float, float]] = Field(default_factory=dict)
    candidate: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Per comparison, the evidence carried into a step by the α plan (app/core/judge/plan.py):
    # (that step, log of its active weight).
    wealth: dict[str, tuple[int, float]] = Field(default_factory=dict)
    # Per comparison, stable's (bad, requests) over the minutes before the release, read at the
    # first step: stable's prior at the 100% step, where the steps passed are its reference.
    before: dict[str, tuple[float, float]] = Field(default_factory=dict)
    slow_under: float | None = None
    # Latency histograms from the steps passed: "stable" is the reference at the 100% step,
    # "candidate" pools the release for promotion (app/core/judge/latency.py).
    histograms: dict[str, CarriedHistogram] = Field(default_factory=dict)
    router_mark: dict[str, Any] | None = None


class RouterCounts(BaseModel):
    """What the router saw of one version since a mark: the user's view, which the app's own
    metrics can miss (timeouts, refused connections, a crashed process's lost counters). From
    HAProxy's own counters, or from a Kubernetes router's proxy's series in the metrics backend."""

    model_config = ConfigDict(frozen=True)

    requests: float = 0
    by_class: dict[str, float] = Field(default_factory=dict)
    proxy_errors: float = Field(0, description="Answers the proxy made up: refused connections, timeouts, resets.")
    down_transitions: int = 0
    failed_checks: int = 0
    currently_down: bool = False
    reset: bool = False
    # Who counted, named in the judge's reasons. Counts stored before there was a choice were HAProxy's.
    source: str = "HAProxy"


class ResponseCounts(BaseModel):
    """A version's responses over [start, end], as counts (what a statistical judge compares).

    Counts are increases of counters over the interval (a counter created inside it counts
    whole), so they may be fractional (a metrics backend extrapolates to the interval's edges).
    `error` says why there is no data (with `requests` None), or what else went wrong (e.g.
    latency buckets that could not be read)."""

    model_config = ConfigDict(frozen=True)

    requests: float | None = None
    by_class: dict[str, float] = Field(
        default_factory=dict, description='Responses by status class: "2xx", "3xx", "4xx", "5xx".'
    )
    by_code: dict[str, float] = Field(
        default_factory=dict,
        description='Responses by status code as the metric labels it ("200", "404", ...), so a service can '
        "leave out codes it legitimately returns.",
    )
    buckets: list[tuple[float, float]] = Field(
        default_factory=list,
        description="Latency histogram: (upper bound in seconds, cumulative count), ascending, +Inf last.",
    )
    backend_failed: bool = Field(
        False,
        description="The metrics backend could not answer (unreachable, too slow, an error): missing data, "
        "not missing traffic. False when it answered that no series matches.",
    )
    error: str | None = None


class VersionCounts(BaseModel):
    """One version over the evidence span: its metrics and what the router saw."""

    metrics: ResponseCounts | None = None
    router: RouterCounts | None = None


class EvidenceObservation(BaseModel):
    """Counts for both versions over the same span [since, at], the input of the judge."""

    since: float
    candidate: VersionCounts = Field(default_factory=VersionCounts)
    stable: VersionCounts = Field(default_factory=VersionCounts)
    # Stable before the release, when it has no traffic now and no earlier step gave a baseline.
    stable_before: VersionCounts | None = None
    # Latency is judged after the candidate's warmup: when that ends after `since`, the latency
    # histograms of both versions over [latency_since, at] (None: use the counts above).
    latency_since: float | None = None
    candidate_latency: ResponseCounts | None = None
    stable_latency: ResponseCounts | None = None


class CheckObservation(BaseModel):
    """A check's measured value(s) for one evaluation. None = no data (empty result, NaN, error)."""

    name: str
    query: str | None = None
    value: float | None = None
    stable_query: str | None = None
    stable_value: float | None = None
    error: str | None = None


class CheckResult(BaseModel):
    """One check at one evaluation: what was measured, against what, and the verdict."""

    name: str
    step: int
    at: float
    value: float | None
    stable_value: float | None = None
    threshold: str
    verdict: Verdict
    detail: str = ""
    query: str | None = None
    stable_query: str | None = None
    evidence: dict[str, Any] | None = Field(
        None, description="For a comparison: counts, rates, estimate and interval, margin, e-value, decisive."
    )
    decisive: bool = False


GateStatus = Literal["go", "no_go", "pending", "unreachable"]


class GateObservation(BaseModel):
    """What one gate answered so far (app/release/gate_checks.py asks; app/core/gate_rules.py decides on it).

    go / no_go: the webhook's answer or a person's approval; pending: nobody approved yet (manual) or
    not asked yet; unreachable: the webhook gave no answer (`since`: first asked, for the timeouts)."""

    name: str
    kind: str
    status: GateStatus
    detail: str = ""
    since: float | None = None
    by: str | None = None


class GateObservations(BaseModel):
    """The gates of one gate point ("step-2", "promotion") as observed by the tick."""

    point: str
    gates: dict[str, GateObservation] = Field(default_factory=dict)


class GateWait(BaseModel):
    """A manual gate the release is waiting for (what the Slack message's buttons approve)."""

    point: str
    gate: str


class Readiness(BaseModel):
    """Can the candidate take the share of traffic the next shift gives it? Observed before `start`
    and before each `advance` (app/core/readiness.py): Kubernetes counts ready replicas against what the
    share needs; HAProxy needs the candidate's server UP. `error` says why it could not be told."""

    weight: int = Field(description="The candidate's share after the shift this readiness is for.")
    ready: int = 0
    needed: int = 1
    detail: str = ""
    error: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.error is None and self.ready >= self.needed


class Observations(BaseModel):
    """Everything a tick learned before deciding. Produced by I/O, consumed by the pure core."""

    at: float
    # When the observing ended (wall clock): the timeouts (no_data_timeout, evidence_timeout) are
    # measured to here, so a slow or frozen Prometheus cannot stretch them; rates use `at`'s now.
    completed_at: float | None = None
    checks: list[CheckObservation] = Field(default_factory=list)
    step_requests: float | None = None
    router_weights: dict[str, int] | None = None
    candidate_healthy: bool | None = None
    health_detail: str = ""
    # From the cluster (Kubernetes): the candidate's container restarts since the release started,
    # the limit, and a condition that fails the release at once (ProgressDeadlineExceeded).
    restarts: int | None = None
    max_restarts: int | None = None
    restarts_detail: str = ""
    fatal: str | None = None
    evidence: EvidenceObservation | None = None
    # The gates of the gate point the release is at (None: not asked; see Decision.gates_needed).
    gates: GateObservations | None = None
    readiness: Readiness | None = None


# revert / baked: a bake's ends (app/core/bake.py): the previous version back, or the bake over.
DecisionKind = Literal["start", "hold", "advance", "pause", "resume", "promote", "fail", "abort", "revert", "baked"]


class Decision(BaseModel):
    kind: DecisionKind
    weights: dict[str, int] | None = None
    step: int | None = None
    reason: str = ""
    results: list[CheckResult] = Field(default_factory=list)
    consecutive_failures: int = 0
    no_data_since: float | None = None
    unready_since: float | None = None
    judge: JudgeState | None = None  # the release's new judge state (None: unchanged)
    # A hold at a gate point whose gates were not observed: the tick asks them and decides again.
    gates_needed: str | None = None
    approval: GateWait | None = None  # a hold waiting for this manual gate (its request is sent once)
    bake_until: float | None = None  # a promotion that bakes until then (app/core/bake.py)


class Event(BaseModel):
    at: float
    type: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


DeliveryState = Literal["pending", "delivered", "failed"]


class DeliveryAttempt(BaseModel):
    """One call to a hook's receiver. Recorded before the call (as interrupted), then with its answer."""

    at: float
    duration_ms: float | None = None
    status: int | None = None
    ok: bool = False
    response: str = ""
    error: str | None = None


class Delivery(BaseModel):
    """A hook delivery: what a release event sends where, and every attempt to send it.

    Its id is derived from (release, event, step, hook), so a redone tick plans the same one."""

    id: str
    release_id: str
    hook: str
    type: str
    event: str
    target: str = Field(description="The receiver, without credentials, query or fragment.")
    payload: dict[str, Any]
    state: DeliveryState = "pending"
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    created_at: float | None = None
    next_attempt_at: float | None = None


Release.model_rebuild()
