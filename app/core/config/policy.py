"""Policies: steps, checks and tolerance. What the pure decision core (app.core.decide) reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from app.core.config.base import Duration, Name, Strict, no_duplicates
from app.core.config.gates import Gate, unique_gates
from app.core.config.shapes import MirrorConfig, SegmentConfig, Shape, step_shapes

CheckKind = Literal["latency", "request_rate", "error_rate", "query"]


class CheckConfig(Strict):
    """One check: a measured value and the threshold it must meet at every evaluation."""

    name: Name
    type: CheckKind = Field(
        description="latency: fraction of responses faster than `under`; request_rate: requests/min; "
        "error_rate: fraction of 5xx responses; query: a metric from `metrics`."
    )
    under: Duration | None = Field(None, description="latency: the response-time bound, e.g. 500ms.")
    metric: Name | None = Field(None, description="query: the name of a metric in `metrics`.")
    min: float | None = None
    max: float | None = None
    max_over_stable: float | None = Field(
        None, description="Fail when candidate - stable exceeds this (same query, same window)."
    )

    @model_validator(mode="after")
    def _coherent(self) -> CheckConfig:
        if self.type == "latency" and self.under is None:
            raise ValueError("a latency check needs `under`, the response-time bound (e.g. under: 500ms)")
        if self.type != "latency" and self.under is not None:
            raise ValueError("`under` only applies to a latency check")
        if self.type == "query" and not self.metric:
            raise ValueError("a query check needs `metric`: the name of an entry in `metrics`")
        if self.type != "query" and self.metric:
            raise ValueError("`metric` only applies to a check of type query")
        if self.min is None and self.max is None and self.max_over_stable is None:
            raise ValueError("a check needs a threshold: min, max or max_over_stable")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class StepConfig(Strict):
    weight: int = Field(
        0,
        ge=0,
        le=100,
        description="Percent of traffic on the candidate during this step (required, except in a segment or "
        "mirror step, where it defaults to 0).",
    )
    duration: Duration | None = Field(None, description="The step lasts at least this long.")
    requests: int | None = Field(
        None, ge=1, description="...and until the candidate has served this many requests in the step."
    )
    pause: bool = Field(False, description="Pause after this step until someone resumes or promotes.")
    gates: list[Gate] = Field(
        default_factory=list,
        description="Asked before this step's weights are applied: each must say go (docs/configuration.md: Gates).",
    )
    segment: SegmentConfig | None = Field(
        None,
        description="Requests with this header or cookie go to the candidate; `weight` (default 0) is the "
        "candidate's share of the rest. Removed when the step ends (docs/shapes.md).",
    )
    mirror: MirrorConfig | None = Field(
        None,
        description="Copy this share of stable's requests to the candidate without serving its answers "
        "(docs/shapes.md). The step's weight must be 0.",
    )

    _unique_gates = field_validator("gates")(unique_gates)

    @model_validator(mode="before")
    @classmethod
    def _shape_weight(cls, data: object) -> object:
        # A segment or mirror step is about the segment's or the copies' traffic: the weight of
        # everyone else may be left out (0: stable serves them all).
        if isinstance(data, dict) and "weight" not in data and not ({"segment", "mirror"} & data.keys()):
            raise ValueError("a step needs `weight`: the percent of traffic on the candidate (e.g. {weight: 10})")
        return data

    @model_validator(mode="after")
    def _one_shape(self) -> StepConfig:
        if self.segment is not None and self.mirror is not None:
            raise ValueError("a step is a segment or a mirror, not both: make them two steps")
        if self.mirror is not None and self.weight != 0:
            raise ValueError(
                f"a mirror step serves no user from the candidate, so its weight must be 0 (got {self.weight}); "
                "put the weighted step after it"
            )
        if self.segment is not None and self.weight == 100:
            raise ValueError("a segment step with weight 100 sends everyone to the candidate: drop the segment")
        return self

    @property
    def shapes(self) -> list[Shape]:
        """What this step needs its router to do ("weights", "segment", "mirror")."""
        return step_shapes(self.segment, self.mirror, self.weight)


class ComparisonConfig(Strict):
    """One comparison of the candidate with stable: the share of one kind of bad response."""

    enabled: bool = True
    margin: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Worse than stable by more than this share is a regression (0.0025 = 0.25 points).",
    )
    detectable: float | None = Field(
        None, gt=0, lt=1, description="A step passes only once the data rule out a regression this large."
    )
    times_stable: float | None = Field(
        None,
        ge=1,
        le=1000,
        description="Promotion also needs the data to rule out more than this many times stable's rate: the floor "
        "is max(times_stable x stable, stable + detectable). Default 3 for errors, off (1) for 4xx and slow.",
    )

    @model_validator(mode="after")
    def _floor_above_margin(self) -> ComparisonConfig:
        if self.margin is not None and self.detectable is not None and self.detectable <= self.margin:
            raise ValueError(
                f"detectable ({self.detectable}) must be larger than margin ({self.margin}): a step passes once "
                "the data rule out a regression of `detectable`, which must be worse than the margin it tolerates"
            )
        return self


class ClientErrorsConfig(ComparisonConfig):
    ignore_codes: list[Annotated[int, Field(ge=400, le=499)]] = Field(
        default_factory=list, description="4xx codes this service answers legitimately (e.g. 404): not counted."
    )


class SlowConfig(ComparisonConfig):
    under: Duration | None = Field(
        None,
        description="A response slower than this is slow (a histogram bucket bound). Default: the smallest "
        "bucket bound that at most 5% of stable's responses exceed (relative to stable, not an SLO).",
    )


class LatencyConfig(Strict):
    """The whole latency distribution against stable's (app/core/judge/distribution.py)."""

    enabled: bool = True
    margin: float = Field(
        0.10,
        ge=0,
        lt=1,
        description="At most this much slower than stable across the distribution is not a regression "
        "(0.10: 10% slower; a few percent slower passes, 25% slower is rolled back).",
    )
    detectable: float = Field(
        0.25, gt=0, le=4, description="Promotion needs the data to rule out a candidate this much slower (or worse)."
    )

    @model_validator(mode="after")
    def _floor_above_margin(self) -> LatencyConfig:
        if self.detectable <= self.margin:
            raise ValueError(
                f"latency.detectable ({self.detectable}) must be larger than latency.margin ({self.margin}): "
                "promotion rules out a slowdown of `detectable`, which must be worse than the margin it tolerates"
            )
        return self


class JudgeConfig(Strict):
    """How the candidate is compared with stable (docs/judging.md). Defaults suit most services."""

    alpha: float = Field(
        0.01, gt=0, le=0.2, description="Chance that a release of two identical versions is rolled back, at most."
    )
    warmup: Duration = Field(
        15.0,
        description="Latency of the candidate's first seconds of traffic is not judged (cold caches, JIT); "
        "its errors are.",
    )
    evidence_timeout: Duration | None = Field(
        None,
        description="A step that still lacks the evidence to pass after this long fails (not enough traffic). "
        "Default: five times the step's duration, at least 3 minutes.",
    )
    client_timeout: Duration | None = Field(
        None,
        description="Your clients give up after this long: a response slower than it (counted from the latency "
        "histogram, above the smallest bucket bound at or over it) is an error, not only a slow response.",
    )
    errors: ComparisonConfig = Field(default_factory=ComparisonConfig, description="5xx and proxy errors.")
    client_errors: ClientErrorsConfig = Field(default_factory=ClientErrorsConfig, description="4xx responses.")
    slow: SlowConfig = Field(default_factory=SlowConfig, description="Slow and timed-out responses.")
    latency: LatencyConfig = Field(
        default_factory=LatencyConfig, description="The whole latency distribution against stable's."
    )


DEFAULT_MIN_EVIDENCE_TIMEOUT = 180.0


class PolicyConfig(Strict):
    name: Name
    interval: Duration = Field(10.0, description="How often checks are evaluated.")
    window: Duration | None = Field(None, description="PromQL range window (default: max(interval, 30s)).")
    steps: list[StepConfig] = Field(min_length=1)
    checks: list[CheckConfig] = Field(default_factory=list)
    tolerance: int = Field(
        0,
        ge=0,
        le=100,
        description="Failed evaluations of `query` checks and health tolerated within a step (a pass does not "
        "reset the count) before the release fails. Comparisons with stable need no tolerance.",
    )
    on_no_data: Literal["fail", "hold", "pass"] = Field(
        "hold",
        description="What a check with no data means: fail it, hold the step (never promote), or pass it.",
    )
    no_data_timeout: Duration | None = Field(
        None, description="With on_no_data: hold, fail the release after holding this long without data."
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The comparison with stable.")
    mode: Literal["live", "shadow"] = Field(
        "live", description="shadow: releases with this policy are judged but never change the router."
    )
    shadow_hooks: Literal["marked", "none"] | None = Field(
        None, description="A shadow release's hooks: marked (default) or none; a service's own setting wins."
    )
    gates_before_promotion: list[Gate] = Field(
        default_factory=list, description="Asked after the last step passed, before the candidate becomes stable."
    )

    _unique_gates = field_validator("gates_before_promotion")(unique_gates)
    bake: Duration | None = Field(
        None,
        description="After promotion, keep judging the new stable version this long against the previous "
        "version's own history before the release, and put the previous version back on evidence of a "
        "regression (docs/bake.md).",
    )
    ready_timeout: Duration = Field(
        300.0,
        description="Sluice moves traffic to the candidate only once it has the ready replicas (Kubernetes) or "
        "UP server (HAProxy) the step needs; a release still waiting after this long fails.",
    )

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, v: float) -> float:
        if v < 0.5:
            raise ValueError("interval must be at least 500ms")
        return v

    @field_validator("steps")
    @classmethod
    def _steps_reach_full_traffic(cls, steps: list[StepConfig]) -> list[StepConfig]:
        if steps and steps[-1].weight != 100:
            raise ValueError(
                f"the last step has weight {steps[-1].weight}; the last step must reach 100 "
                "(all traffic on the candidate) before promotion"
            )
        return steps

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, checks: list[CheckConfig]) -> list[CheckConfig]:
        no_duplicates([c.name for c in checks], "check")
        return checks

    def evidence_timeout(self, step: StepConfig) -> float:
        """How long a step may wait for evidence before it fails for lack of it."""
        if self.judge.evidence_timeout is not None:
            return self.judge.evidence_timeout
        return max(DEFAULT_MIN_EVIDENCE_TIMEOUT, 5 * (step.duration or DEFAULT_MIN_EVIDENCE_TIMEOUT))

    @property
    def judged_periods(self) -> int:
        """How many periods the policy's alpha is split over: each step, and the bake (docs/bake.md)."""
        return len(self.steps) + (1 if self.bake else 0)

    @property
    def query_window(self) -> float:
        return self.window if self.window is not None else max(self.interval, 30.0)
