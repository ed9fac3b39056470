"""What a replay or backtest job answers (GET /api/v1/replays/<id>, /backtests/<id>) and the
dashboard draws: app/analysis/jobs.py builds these from app/analysis/replay.py's and app/analysis/backtest.py's results.

A replay report carries what a live release page needs for its per-check charts (the policy's
steps and check thresholds, and every replayed evaluation as a CheckResult), next to what was
recorded at each evaluation, so the page can show both and mark where they differ.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.config.policy import StepConfig
from app.core.models import CheckResult, ReleaseState
from app.release.views import CheckThreshold, ReleaseSummary


class ReplayStep(BaseModel):
    """One recorded evaluation or decision, and what the replay decided at that time."""

    at: float
    step: int = Field(description="1-based step of the replayed release when it decided.")
    recorded: str | None = Field(description="What happened then (a decision kind: hold, advance, fail...).")
    recorded_reason: str
    replayed: str = Field(description="What the policy decides on the same data.")
    reason: str
    state: ReleaseState = Field(description="The replayed release's state after the decision.")
    external: bool = Field(description="A recorded action that was no evaluation (by hand, a router error).")
    differs: bool
    verdicts: list[str] = Field(
        description="Checks whose verdict differs from the record: `name: recorded -> replayed`."
    )


class ReplayReport(BaseModel):
    release: ReleaseSummary
    policy: str = Field(description="The policy replayed (the release's own, or the one asked for).")
    recorded_state: ReleaseState
    replayed_state: ReleaseState
    replayed_reason: str
    replayed_step: int | None = Field(description="1-based step where the replay ended (or stands).")
    same: bool = Field(description="The same decision at every evaluation and the same end.")
    differences: int
    steps: list[ReplayStep]
    policy_steps: list[StepConfig]
    checks: list[CheckThreshold]
    evaluations: list[CheckResult] = Field(description="The replay's check results, for the charts.")
    recorded_evaluations: list[CheckResult]
    notes: list[str]


class BacktestVerdict(BaseModel):
    policy: str
    decides: Literal["fail", "promote", "pause", "revert", "baked", "running"] = Field(
        description="What the policy decides on the change (`revert` / `baked`: how its bake after promotion "
        "ended, docs/bake.md; `running`: no verdict within the data)."
    )
    after_seconds: float | None = Field(description="From the change's first traffic to the verdict.")
    check: str | None = Field(description="The first failing check of a `fail`.")
    reason: str
    evaluations: int
    classification: str = Field(
        description="`caught`, `ok`, `FALSE ROLLBACK`, `MISSED REGRESSION`, or `-` where history does not know."
    )


class BacktestChange(BaseModel):
    source: str | None
    target: str
    first_traffic: float
    last_traffic: float
    replaced_at: float | None
    release: str | None = Field(description="Sluice's own release of the version, if any.")
    outcome: Literal["good", "bad"] | None = Field(description="What history says, where it knows.")
    why: str
    verdicts: list[BacktestVerdict] = Field(description="One per policy, in the order of `policies`.")
    agree: bool | None = Field(description="With two policies: whether they decide the same.")


class PolicyTally(BaseModel):
    policy: str
    changes: int
    false_rollbacks: int
    missed_regressions: int


class BacktestReport(BaseModel):
    service: str
    application: str
    since: float
    until: float
    policies: list[str]
    changes: list[BacktestChange] = Field(description="Every version change found, in order of first traffic.")
    tallies: list[PolicyTally]
    notes: list[str]
    seconds: float = Field(description="How long the backtest took.")
