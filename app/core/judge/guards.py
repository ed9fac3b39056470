"""Absolute guards on the candidate (an SLO: `error_rate` max, `latency` min) and the traffic floor.

Pure (no I/O). A guard is tested on the candidate's counts with the same evidence rule as the
comparisons (app/core/judge/mixture.py, one sample), and blames the candidate only when stable,
over the same span, keeps the limit. `request_rate` min is a traffic floor: below it the step waits.
"""

from __future__ import annotations

import math

from app.core.config.policy import CheckConfig
from app.core.describe import describe_threshold, format_value
from app.core.judge import evidence as ev
from app.core.judge.samples import errors_sample, no_histogram, slow_sample
from app.core.models import CheckResult, VersionCounts

# An absolute guard needs this many candidate requests before it can pass.
MIN_GUARD_REQUESTS = 20


def warming(name: str, left: float, step: int, now: float) -> CheckResult:
    return CheckResult(
        name=name,
        step=step,
        at=now,
        value=None,
        threshold="after warmup",
        verdict="insufficient",
        detail=f"{name}: the candidate is warming up ({left:.0f}s left; judge.warmup)",
    )


def guard(
    check: CheckConfig,
    cand: VersionCounts,
    stable: VersionCounts | None,
    use_router: bool,
    threshold: float,
    step: int,
    now: float,
    failed: str | None = None,
    client_timeout: float | None = None,
) -> CheckResult:
    """An absolute limit (an SLO) on the candidate, tested on its counts with the same evidence rule.
    It blames the candidate only when stable, over the same span, keeps the limit: when both break
    it (a traffic spike, a slow dependency), the cause is shared, and the comparisons with stable
    judge whether the candidate is worse."""
    base = dict(name=check.name, step=step, at=now, threshold=describe_threshold(check))
    shared = _breaks_too(check, stable, use_router, client_timeout)
    if check.type == "error_rate":
        sample = errors_sample(cand, use_router, client_timeout)  # what the clients gave up on is an error
        bad_limit = check.max  # the share of bad responses must stay under this
        good_limit = check.min
        to_value = lambda s: s.bad / s.n  # noqa: E731
    else:
        sample = slow_sample(cand, check.under)
        bad_limit = None if check.min is None else 1.0 - check.min
        good_limit = None if check.max is None else 1.0 - check.max
        to_value = lambda s: 1.0 - s.bad / s.n  # noqa: E731 - the fraction under the bound
    if check.type == "latency" and no_histogram(cand):
        # No latency histogram (e.g. Datadog's distributions): app.core.decide judges the check on the
        # provider's own value for it instead.
        return CheckResult(
            **base, value=None, verdict="no_data", detail="no latency histogram", evidence={"fallback": True}
        )
    if (sample is None or sample.n <= 0) and failed:
        return CheckResult(**base, value=None, verdict="no_data", detail=f"{check.name}: {failed}")
    if sample is None or sample.n <= 0:
        return CheckResult(**base, value=None, verdict="insufficient", detail=f"{check.name}: no candidate traffic yet")
    value = to_value(sample)
    rate = sample.bad / sample.n
    if bad_limit is not None and 0 < bad_limit < 1:
        log_e = ev.log_e_over_limit(min(sample.bad, sample.n), sample.n, bad_limit)
        if log_e >= threshold and shared is not None:
            # Stable breaks the SLO too, over the same span: the cause is shared (a spike, a slow
            # dependency), and whether the candidate is worse than stable is the comparisons' call.
            return CheckResult(
                **base,
                value=value,
                verdict="pass",
                detail=f"{check.name} {format_value(value)} is beyond {describe_threshold(check)}, and so is stable's "
                f"{format_value(shared)} over the same span: a shared cause, not the candidate's",
            )
        if log_e >= threshold:
            detail = (
                f"{check.name} {format_value(value)} (n={sample.n:,.0f}): beyond {describe_threshold(check)}, "
                f"evidence 1/{math.exp(min(log_e, 700)):,.0f} [{sample.source}]"
            )
            return CheckResult(**base, value=value, verdict="fail", detail=detail, decisive=rate >= 0.5)
    elif bad_limit is not None and bad_limit <= 0 and sample.bad > 0 and sample.n >= MIN_GUARD_REQUESTS:
        return CheckResult(**base, value=value, verdict="fail", detail=f"{check.name} {format_value(value)}")
    if sample.n < MIN_GUARD_REQUESTS:
        return CheckResult(
            **base,
            value=value,
            verdict="insufficient",
            detail=f"{check.name}: {sample.n:.0f} of {MIN_GUARD_REQUESTS} requests needed to judge",
        )
    within = (bad_limit is None or rate <= bad_limit) and (good_limit is None or rate >= good_limit)
    if not within:
        return CheckResult(
            **base,
            value=value,
            verdict="insufficient",
            detail=f"{check.name} {format_value(value)} (n={sample.n:,.0f}) is beyond {describe_threshold(check)}, "
            "not conclusive yet",
        )
    return CheckResult(**base, value=value, verdict="pass", detail=f"[{sample.source}] n={sample.n:,.0f}")


def _breaks_too(
    check: CheckConfig, stable: VersionCounts | None, use_router: bool, client_timeout: float | None
) -> float | None:
    """Stable's value when it, too, is beyond the check's limit over the same span; else None."""
    if stable is None:
        return None
    if check.type == "error_rate":
        sample = errors_sample(stable, use_router, client_timeout)
        if sample is None or sample.n < MIN_GUARD_REQUESTS:
            return None
        rate = sample.bad / sample.n
        return rate if check.max is not None and rate > check.max else None
    sample = slow_sample(stable, check.under)
    if sample is None or sample.n < MIN_GUARD_REQUESTS:
        return None
    under = 1.0 - sample.bad / sample.n
    return under if check.min is not None and under < check.min else None


def traffic_floor(
    check: CheckConfig, cand: VersionCounts, use_router: bool, span: float, step: int, now: float
) -> CheckResult:
    """request_rate: a minimum is an evidence condition (too little traffic holds the step, never
    fails it); a maximum is a limit."""
    base = dict(name=check.name, step=step, at=now, threshold=describe_threshold(check))
    sample = errors_sample(cand, use_router)
    if sample is None:
        return CheckResult(**base, value=None, verdict="insufficient", detail=f"{check.name}: no candidate counts yet")
    per_minute = sample.n / span * 60.0
    if check.max is not None and per_minute > check.max:
        return CheckResult(
            **base,
            value=per_minute,
            verdict="fail",
            detail=f"{format_value(per_minute)} requests/min is above the maximum {format_value(check.max)}",
        )
    if check.min is not None and per_minute < check.min:
        return CheckResult(
            **base,
            value=per_minute,
            verdict="insufficient",
            detail=f"traffic {format_value(per_minute)}/min is below the minimum {format_value(check.min)}/min: "
            "waiting for traffic",
        )
    return CheckResult(**base, value=per_minute, verdict="pass")
