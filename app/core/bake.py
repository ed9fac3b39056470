"""The bake after promotion: is the new stable version worse than the previous one was before the release?

Pure (no I/O). A policy with `bake: 30m` does not end its release at promotion: the release is
`baking` for that long, the previous version stays warm, and every interval the new stable's counts
since the promotion are compared with the previous version's own counts over a window of the same
length just before the release began (app/release/bake.py observes both). The comparison is the
judge's (app/core/judge/evidence.py: the same anytime-valid test, margins, decisive gap and alpha
split, the bake counting as one more period of the policy). Evidence of a regression reverts: all
traffic back on the previous version, its `rollback` hooks, the version known-bad. No evidence by
the end: the bake is over (`baked`), and the previous version is scaled down as after any promotion.

Why that reference (docs/bake.md): during the bake the previous version serves nobody, so there is no
concurrent control. Its own history is the closest stand-in: the window right before the release
(nearest in time, so the same hour of the day and the same traffic mix, as far as anything is), as long
as the bake, and never overlapping the release's steps, where it shared traffic with the candidate.
"""

from __future__ import annotations

import math
from typing import Any

from app.core.config.policy import ComparisonConfig, PolicyConfig
from app.core.judge import evidence as ev
from app.core.judge.compare import margin_and_floor
from app.core.judge.samples import (
    MIN_LIVE_REFERENCE,
    Sample,
    client_errors_sample,
    errors_sample,
    slow_sample,
    why_none,
)
from app.core.known_bad import ROLLBACK_TRIGGER, KnownBad
from app.core.models import CheckResult, Decision, EvidenceObservation, Observations, Release, VersionCounts

# The results' names: the bake's comparisons are not the steps' (their reference is history, not live).
# Slow responses are compared only against a bound the policy sets (judge.slow.under), see judge_bake.
BAKE_NAMES = {"errors": "bake-errors", "4xx": "bake-4xx", "slow": "bake-slow"}


def bake_until(release: Release, policy: PolicyConfig, now: float) -> float | None:
    """When a promotion decided now stops baking (None: no bake). A shadow release promotes nothing
    and a rollback release goes back to a version that was stable: neither bakes."""
    if not policy.bake or release.shadow or release.trigger == ROLLBACK_TRIGGER:
        return None
    return now + policy.bake


def enter(new: Release, decision: Decision, now: float) -> None:
    """A promotion with a bake leaves the release `baking` instead of succeeded (engine.decided)."""
    if decision.kind == "promote" and decision.bake_until is not None and not new.shadow:
        new.state = "baking"
        new.finished_at = None
        new.bake_started_at = now
        new.bake_until = decision.bake_until


def reference_window(release: Release) -> tuple[float, float]:
    """The previous version's history the bake compares with: as long as the bake, ending when the
    release was created (before the candidate had any traffic)."""
    assert release.bake_started_at is not None and release.bake_until is not None
    length = release.bake_until - release.bake_started_at
    return release.created_at - length, release.created_at


def end(release: Release, reason: str) -> Decision:
    """The bake is over without a revert: by time, by hand (abort or promote), or superseded."""
    return Decision(kind="baked", reason=reason, consecutive_failures=release.consecutive_failures)


def stable_after(release: Release, kind: str) -> str | None:
    """The service's stable version after a bake's decision: the previous one again after a revert."""
    return release.source_version if kind == "revert" and not release.shadow else None


def decide_bake(release: Release, policy: PolicyConfig, obs: Observations, now: float) -> Decision:
    """One evaluation of a baking release: revert on evidence, end when the time is up, else hold."""
    results = judge_bake(release, policy, obs.evidence, now)
    failed = [r for r in results if r.verdict == "fail"]
    until = release.bake_until if release.bake_until is not None else now
    into = now - (release.bake_started_at or now)
    if failed:
        return Decision(
            kind="revert",
            weights=release.stable_weights(),
            results=results,
            consecutive_failures=release.consecutive_failures,
            reason=f"reverted during bake: {failed[0].detail}, {_duration(into)} after promotion; "
            f"{release.source_version} is back",
        )
    said = "; ".join(r.detail for r in results) or "no counts yet"
    if now >= until:
        return end(
            release,
            f"baked for {_duration(into)}: no evidence that {release.target_version} is worse than "
            f"{release.source_version} was before the release ({said})",
        ).model_copy(update={"results": results})
    return Decision(
        kind="hold",
        results=results,
        consecutive_failures=release.consecutive_failures,
        reason=f"baking: {_duration(until - now)} left; {said}",
    )


def judge_bake(
    release: Release, policy: PolicyConfig, obs: EvidenceObservation | None, now: float
) -> list[CheckResult]:
    """Each enabled comparison (errors, 4xx, and slow with `judge.slow.under`): the new stable since the
    promotion against the previous version's reference window, with the steps' margins and alpha."""
    if obs is None or obs.stable_before is None or now <= obs.since:
        return []
    cfg = policy.judge
    # Slow responses only against a bound a person set: the automatic bound sits just above the
    # previous version's usual latency, where a busier machine or network an hour later moves the
    # share by points with no concurrent control to cancel it (docs/bake.md: a false revert measured).
    slow = cfg.slow.enabled and cfg.slow.under is not None
    kinds = [
        (k, c)
        for k, c in (("errors", cfg.errors), ("4xx", cfg.client_errors), ("slow", cfg.slow))
        if c.enabled and (k != "slow" or slow)
    ]
    alpha = ev.check_alpha(cfg.alpha, n_checks=max(1, len(kinds)), n_steps=policy.judged_periods)
    under = cfg.slow.under
    error_rate = next((c for c in policy.checks if c.type == "error_rate"), None)
    out = []
    for kind, conf in kinds:
        margin = conf.margin
        if margin is None and kind == "errors" and error_rate is not None:
            margin = error_rate.max_over_stable  # as the steps read it (app/core/judge/judging.py)
        cand = _sample(kind, obs.candidate, under, policy)
        ref = _sample(kind, obs.stable_before, under, policy)
        out.append(_compare(release, kind, conf, margin, cand, ref, obs.candidate, alpha, now))
    return out


def _sample(kind: str, counts: VersionCounts, under: float | None, policy: PolicyConfig) -> Sample | None:
    # The metrics backend's counts only: the router keeps no history of the previous version, and
    # both sides must be counted the same way.
    metrics_only = VersionCounts(metrics=counts.metrics)
    if kind == "errors":
        return errors_sample(metrics_only, False, policy.judge.client_timeout)
    if kind == "4xx":
        return client_errors_sample(metrics_only, False, policy.judge.client_errors.ignore_codes)
    return slow_sample(metrics_only, under)


def _compare(
    release: Release,
    kind: str,
    conf: ComparisonConfig,
    margin: float | None,
    cand: Sample | None,
    ref: Sample | None,
    counted: VersionCounts,
    alpha: float,
    now: float,
) -> CheckResult:
    defaults = ev.DEFAULTS[kind]
    margin, detectable = margin_and_floor(defaults, margin, conf.detectable)
    reference = f"{release.source_version} before the release"
    base: dict[str, Any] = dict(
        name=BAKE_NAMES[kind], step=release.step, at=now, threshold=f"<= {reference} + {100 * margin:.3g} points"
    )
    if cand is None:
        return CheckResult(**base, value=None, verdict="no_data", detail=f"{kind}: {why_none(counted)}")
    if ref is None or ref.n < MIN_LIVE_REFERENCE:
        seen = 0 if ref is None else ref.n
        return CheckResult(
            **base,
            value=None,
            verdict="insufficient",
            detail=f"{kind}: {release.source_version} served {seen:,.0f} requests before the release "
            f"(fewer than {MIN_LIVE_REFERENCE}): nothing to compare with",
        )
    e = ev.judge(
        kind, min(cand.bad, cand.n), cand.n, min(ref.bad, ref.n), ref.n, alpha=alpha, margin=margin,
        detectable=max(detectable, defaults.step_floor or detectable), decisive_gap=defaults.decisive_gap,
        reference=reference, times_stable=1.0,
    )  # fmt: skip
    if e.verdict == "fail":
        verdict, detail = "fail", e.sentence()
    else:  # the bake ends by time: "not worse so far" is all it needs to say
        verdict = "pass"
        detail = (
            f"{kind} {100 * e.rate_c:.1f}% vs {reference} {100 * e.rate_s:.1f}% "
            f"(n={e.n_c:,.0f} vs {e.n_s:,.0f}): no evidence of a regression"
        )
    record = {
        "kind": kind,
        "source": cand.source,
        "reference": reference,
        "bad": [round(e.bad_c, 3), round(e.bad_s, 3)],
        "requests": [round(e.n_c, 3), round(e.n_s, 3)],
        "estimate": e.estimate,
        "interval": [e.lower, e.upper],
        "margin": e.margin,
        "e_value": e.e_value if math.isfinite(e.e_value) else None,
        "log_e": e.log_e,
        "alpha": alpha,
        "decisive": e.decisive,
        "bake": True,
    }
    return CheckResult(
        **base, value=e.rate_c, stable_value=e.rate_s, verdict=verdict, detail=detail, decisive=e.decisive,
        evidence=record,
    )  # fmt: skip


def known_bad_for_revert(release: Release, results: list[CheckResult], now: float) -> KnownBad:
    """The entry a bake's revert leaves for the version it took out."""
    failed = [r.name for r in results if r.verdict == "fail"]
    return KnownBad(
        version=release.target_version,
        release_id=release.id,
        reason=f"reverted during its bake on {', '.join(failed) or 'evidence of a regression'}",
        at=now,
        detail=release.reason or "",
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
