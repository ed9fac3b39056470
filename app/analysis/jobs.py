"""The worker's side of replay and backtest jobs: run one, store its report or a clear error.

RQ calls `run_job(job_id)` (enqueued by name from app/store/jobs.py, so the web process never
imports this module, nor the replay and backtest engines). The input was validated by the API;
what can still go wrong while the job waited (a release's service or a policy gone from the
configuration) becomes a failed job that says so. Anything unexpected is logged here and the
job says to read the worker's log: no traceback, URL or secret reaches the API.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from app.analysis.backtest import Backtest, backtest
from app.analysis.job_reports import (
    BacktestChange,
    BacktestReport,
    BacktestVerdict,
    PolicyTally,
    ReplayReport,
    ReplayStep,
)
from app.analysis.replay import ReplayError, ReplayResult, replay
from app.context import Context, UnknownService, get_context
from app.core.config.base import parse_duration
from app.release.views import check_thresholds, release_summary

log = logging.getLogger("sluice.jobs")
DAY = 86400.0


def since_seconds(text: str) -> float:
    """`14d`, `36h`, `90m` -> seconds (the CLI's `--since`)."""
    text = text.strip()
    if text.endswith("d"):
        return float(text[:-1]) * DAY
    return parse_duration(text)


def run_job(job_id: str) -> str:
    ctx = get_context()
    job = ctx.store.jobs.start(job_id)
    if job is None:
        return "gone, or already ended"
    try:
        result: BaseModel = replay_report(ctx, job.input) if job.kind == "replay" else backtest_report(ctx, job.input)
    except (ReplayError, UnknownService, LookupError, ValueError) as exc:
        ctx.store.jobs.finish(job, error=str(exc) or type(exc).__name__)
        log.warning("%s job %s failed: %s", job.kind, job.id, job.error)
        return "failed"
    except Exception:
        log.exception("%s job %s failed", job.kind, job.id)
        ctx.store.jobs.finish(job, error=f"internal error in the {job.kind}; the worker's log has the details")
        return "failed"
    ctx.store.jobs.finish(job, result.model_dump(mode="json"))
    log.info("%s job %s done in %.1fs", job.kind, job.id, (job.finished_at or 0) - (job.started_at or 0))
    return "done"


def replay_report(ctx: Context, data: dict[str, Any]) -> ReplayReport:
    result = replay(ctx, data["release"], data.get("policy"))
    return build_replay_report(ctx, result)


def build_replay_report(ctx: Context, result: ReplayResult) -> ReplayReport:
    policy = ctx.config.policy(result.policy)
    steps = [
        ReplayStep(
            at=s.at,
            step=s.step + 1,
            recorded=s.recorded,
            recorded_reason=s.recorded_reason,
            replayed=s.decision.kind,
            reason=s.decision.reason,
            state=s.state,
            external=s.external,
            differs=s.differs,
            verdicts=s.verdicts,
        )
        for s in result.steps
    ]
    final = result.final
    return ReplayReport(
        release=release_summary(result.release),
        policy=result.policy,
        recorded_state=result.release.state,
        replayed_state=final.state,
        replayed_reason=final.reason or "",
        replayed_step=final.step + 1 if final.step >= 0 else None,
        same=not result.differences and final.state == result.release.state,
        differences=len(result.differences),
        steps=steps,
        policy_steps=policy.steps,
        checks=[check_thresholds(c) for c in policy.checks],
        evaluations=[r for s in result.steps for r in s.decision.results],
        recorded_evaluations=ctx.store.evaluations(result.release.id),
        notes=result.notes,
    )


def backtest_report(ctx: Context, data: dict[str, Any]) -> BacktestReport:
    policies = data.get("compare") or ([data["policy"]] if data.get("policy") else None)
    application = data.get("application")
    result = backtest(ctx, data["service"], since_seconds(data["since"]), policies, application)
    app_name = ctx.config.find_service(data["service"], application)[0].name
    return build_backtest_report(result, app_name)


def build_backtest_report(result: Backtest, application: str) -> BacktestReport:
    names = list(result.verdicts)
    changes = [c for c in result.changes if c.source]
    rows = []
    for i, change in enumerate(changes):
        verdicts = [
            BacktestVerdict(
                policy=name,
                decides=v.kind,
                after_seconds=v.at,
                check=v.check,
                reason=v.reason,
                evaluations=v.evaluations,
                classification=v.classification,
            )
            for name in names
            for v in [result.verdicts[name][i]]
        ]
        rows.append(
            BacktestChange(
                source=change.source,
                target=change.target,
                first_traffic=change.first_traffic,
                last_traffic=change.last_traffic,
                replaced_at=change.replaced_at,
                release=change.release.id if change.release else None,
                outcome=change.outcome,
                why=change.why,
                verdicts=verdicts,
                agree=verdicts[0].decides == verdicts[1].decides if len(verdicts) == 2 else None,
            )
        )
    tallies = [
        PolicyTally(
            policy=name,
            changes=len(result.verdicts[name]),
            false_rollbacks=sum(v.classification == "FALSE ROLLBACK" for v in result.verdicts[name]),
            missed_regressions=sum(v.classification == "MISSED REGRESSION" for v in result.verdicts[name]),
        )
        for name in names
    ]
    return BacktestReport(
        service=result.service,
        application=application,
        since=result.since,
        until=result.until,
        policies=names,
        changes=rows,
        tallies=tallies,
        notes=result.notes,
        seconds=round(result.seconds, 2),
    )
