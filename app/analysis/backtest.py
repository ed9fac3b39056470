"""`sluice backtest SERVICE --since 14d`: what a policy would have decided on a service's past versions.

Version changes come from two places: Sluice's own releases of the service (in the store), and
Prometheus (new values of the version label that received traffic: a range query of
`sum by (version) (rate(requests[5m]))` over the period, refined to about one scrape). Each change is
replayed from the moment the new version first received traffic, one evaluation per policy interval,
with the tick's own observations (app/analysis/replay.py: `observe_history`) and the same `decide()`. The
replayed release's weights follow the split that actually happened (history cannot be re-routed),
so the judge compares the traffic each version really served, as a shadow release would.

Where history knows the outcome it is used: a Sluice release of the version that failed or was
aborted, or a version replaced within an hour, was bad; a version that served for over an hour (or a
release that succeeded and was not replaced within the hour) was good. A policy that fails a good
version is a false rollback; one that lets a bad version through is a missed regression.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from app.analysis.replay import carry, history_context, observe_history
from app.context import Context
from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.models import Release

REPLACED_WITHIN = 3600.0  # a version replaced this soon after its first traffic was a bad one
HORIZON = 4 * 3600.0  # never replay one change for longer than this
DISCOVERY_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series


@dataclass
class Change:
    """One version change of the service: `target` first received traffic at `first_traffic`."""

    source: str | None
    target: str
    first_traffic: float
    last_traffic: float
    replaced_at: float | None = None  # when a later version first received traffic
    release: Release | None = None  # Sluice's own release of it, if any
    outcome: str | None = None  # "bad", "good" or None (unknown)
    why: str = ""


@dataclass
class Verdict:
    change: Change
    policy: str
    # "fail", "promote", "pause", a bake's "revert" or "baked", or "running" (no verdict within the data)
    kind: str
    at: float | None
    check: str | None  # the first failing check of a "fail"
    reason: str
    evaluations: int

    @property
    def classification(self) -> str:
        bad, failed = self.change.outcome == "bad", self.kind in ("fail", "revert")
        if self.change.outcome is None:
            return "-"
        if failed and bad:
            return "caught"
        if failed:
            return "FALSE ROLLBACK"
        if bad and self.kind in ("promote", "pause", "running", "baked"):
            return "MISSED REGRESSION"
        return "ok"


@dataclass
class Backtest:
    service: str
    since: float
    until: float
    changes: list[Change]
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)  # policy -> one per change
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _sel(ctx: Context, service: str, namespace: str, version: str | None = None) -> str:
    prom = ctx.config.prometheus
    parts = [f'{prom.service_label}="{service}"']
    if version is not None:
        parts.append(f'{prom.version_label}="{version}"')
    if prom.namespace_label:
        parts.append(f'{prom.namespace_label}="{namespace}"')
    return ",".join(parts)


def discover(ctx: Context, service: str, namespace: str, since: float, until: float) -> tuple[list[Change], list[str]]:
    """Versions that received traffic in [since, until], in order of their first traffic."""
    prom = ctx.config.prometheus
    querier = ctx.prometheus
    step = float(max(60, math.ceil((until - since) / DISCOVERY_POINTS)))
    label = prom.version_label
    query = f"sum by ({label}) (rate({prom.requests_metric}{{{_sel(ctx, service, namespace)}}}[5m])) > 0"
    series, error = querier.query_range(query, since, until, step)
    if error is not None:
        return [], [f"Prometheus: {error}"]
    spans = []
    for labels, points in series:
        if points and labels.get(label):
            spans.append((points[0][0], points[-1][0], labels[label]))
    spans.sort()
    changes: list[Change] = []
    for i, (first, last, version) in enumerate(spans):
        if i == 0 and first <= since + step:
            continue  # serving when the period began: the first stable, not a change
        first = _refine(ctx, service, namespace, version, first, step)
        serving_before = [v for f, last_seen, v in spans[:i] if last_seen >= first - step]
        source = serving_before[-1] if serving_before else (spans[i - 1][2] if i else None)
        changes.append(Change(source, version, first, last))
    for a, b in zip(changes, changes[1:], strict=False):
        a.replaced_at = b.first_traffic
    return changes, []


def _refine(ctx: Context, service: str, namespace: str, version: str, detected: float, step: float) -> float:
    """The first traffic to about one scrape: `increase > 0` at 15 s steps before the coarse detection."""
    prom = ctx.config.prometheus
    query = f"sum(increase({prom.requests_metric}{{{_sel(ctx, service, namespace, version)}}}[2m])) > 0"
    series, error = ctx.prometheus.query_range(query, detected - step - 360, detected, 15)
    if error is not None or not series or not series[0][1]:
        return detected
    return series[0][1][0][0]


def _split(ctx: Context, service: str, namespace: str, start: float, end: float, interval: float) -> dict[str, list]:
    """Each version's request rate over [start, end] at the policy's interval (the split that happened)."""
    prom = ctx.config.prometheus
    label = prom.version_label
    query = f"sum by ({label}) (rate({prom.requests_metric}{{{_sel(ctx, service, namespace)}}}[1m]))"
    series, _ = ctx.prometheus.query_range(query, start, end, max(interval, 1.0))
    return {labels.get(label, ""): points for labels, points in series}


def _rate_at(points: list[tuple[float, float]], t: float) -> float:
    best = 0.0
    for ts, value in points:
        if ts > t + 1e-6:
            break
        best = value
    return best


def classify(change: Change, until: float) -> None:
    """What history says about a version (sets `outcome` and `why`)."""
    rel = change.release
    if rel is not None and rel.state in ("failed", "aborted"):
        change.outcome, change.why = "bad", f"release {rel.id} {rel.state}"
        return
    if change.replaced_at is not None and change.replaced_at - change.first_traffic <= REPLACED_WITHIN:
        change.outcome = "bad"
        change.why = f"replaced after {(change.replaced_at - change.first_traffic) / 60:.0f} min"
        return
    served = (change.replaced_at or until) - change.first_traffic
    if served > REPLACED_WITHIN:
        change.outcome = "good"
        change.why = f"served {served / 3600:.1f} h" + (f"; release {rel.id} {rel.state}" if rel else "")
        return
    change.outcome, change.why = None, "too recent to tell"


def judge_change(
    ctx: Context, change: Change, policy: PolicyConfig, app_name: str, service: str, namespace: str
) -> Verdict:
    """Replay one change under `policy`: from its first traffic, one evaluation per interval."""
    start = change.first_traffic
    end = min(change.last_traffic, start + HORIZON, time.time())
    if change.replaced_at is not None:
        end = min(end, change.replaced_at)
    release = Release(
        id=f"backtest-{change.target}",
        application=app_name,
        namespace=namespace,
        service=service,
        source_version=change.source or "",
        target_version=change.target,
        policy=policy.name,
        created_at=start,
        updated_at=start,
        desired_weights={change.source or "": 100},
    )
    split = _split(ctx, release.service, namespace, start, end, policy.interval)
    t, n = start, 0
    while t <= end and not release.terminal:
        cand = _rate_at(split.get(change.target, []), t)
        stable = _rate_at(split.get(change.source or "", []), t)
        if release.state == "running":
            share = 100 if stable <= 0 else round(100 * cand / (cand + stable)) if cand + stable > 0 else 0
            release = release.model_copy(
                update={"desired_weights": {release.source_version: 100 - share, release.target_version: share}}
            )
        obs = observe_history(ctx, release, policy, t)
        decision = decide(release, policy, obs, t)
        release = carry(release, decision, t)
        n += 1
        if release.state == "baking":  # promoted, and the policy bakes: judge the bake too (docs/bake.md)
            t += policy.interval
            continue
        if decision.kind in ("fail", "promote", "pause", "revert", "baked"):
            failing = [r.name for r in decision.results if r.verdict == "fail"]
            check = failing[0] if failing else None
            if decision.kind == "fail" and check is None:
                no_data = [r.name for r in decision.results if r.verdict == "no_data"]
                check = no_data[0] if no_data else "evidence timeout"
            return Verdict(change, policy.name, decision.kind, t - start, check, decision.reason, n)
        t += policy.interval
    return Verdict(change, policy.name, "running", None, None, release.reason or "", n)


def backtest(
    ctx: Context,
    service: str,
    since_seconds: float,
    policies: list[str] | None = None,
    application: str | None = None,
    until: float | None = None,
) -> Backtest:
    clock = time.monotonic()
    until = time.time() if until is None else until
    since = until - since_seconds
    apps = ctx.config.find_service(service, application)
    if not apps:
        raise LookupError(f"no service {service!r} in the configuration")
    app = apps[0]
    svc = app.service(service)
    assert svc is not None
    hctx = history_context(ctx)
    changes, notes = discover(hctx, service, app.namespace, since, until)
    # Sluice's own releases of the service in the period
    try:
        releases, _ = ctx.store.list_releases(service=service, application=app.name, limit=500)
    except Exception as exc:  # noqa: BLE001 - a backtest on Prometheus alone is still useful
        releases, notes = [], notes + [f"Sluice's release history is not available: {exc}"]
    for rel in sorted(releases, key=lambda r: r.created_at):
        if not since <= rel.created_at <= until:
            continue
        match = next((c for c in changes if c.target == rel.target_version), None)
        if match is not None:
            match.release = rel
        else:
            changes.append(
                Change(rel.source_version, rel.target_version, rel.created_at, rel.finished_at or until, release=rel)
            )
    changes.sort(key=lambda c: c.first_traffic)
    for change in changes:
        classify(change, until)
    named = [svc.policy] if isinstance(svc.policy, str) else list(svc.policy.model_dump().values())
    default = [n for n in named if n][:1]
    result = Backtest(service, since, until, changes, notes=notes)
    for name in policies or default:
        policy = hctx.config.policy(name)
        result.verdicts[name] = [
            judge_change(hctx, c, policy, app.name, service, app.namespace) for c in changes if c.source
        ]
    result.notes.append(
        "judged on the metrics provider's counts and the traffic split that actually happened "
        "(router counts and health are not historical)"
    )
    result.seconds = time.monotonic() - clock
    return result


def render(result: Backtest) -> str:
    from datetime import UTC, datetime

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")

    names = list(result.verdicts)
    lines = [
        f"backtest of {result.service} from {when(result.since)} to {when(result.until)} UTC: "
        f"{len(result.changes)} version change(s); policies {', '.join(names)}",
    ]
    head = f"{'version':<22} {'first traffic':<17} {'history says':<28}"
    for name in names:
        head += f" | {name[:12] + ' decides':<34} {'result':<17}"
    if len(names) == 2:
        head += " | agree"
    lines.append(head)
    changes = [c for c in result.changes if c.source]
    for i, change in enumerate(changes):
        row = f"{(change.source or '?') + ' -> ' + change.target:<22} {when(change.first_traffic):<17} "
        row += f"{((change.outcome or '?') + ': ' + change.why)[:28]:<28}"
        kinds = []
        for name in names:
            v = result.verdicts[name][i]
            what = (
                v.kind + (f" +{v.at / 60:.1f}min" if v.at is not None else "") + (f" on {v.check}" if v.check else "")
            )
            kinds.append((v.kind, v.check))
            row += f" | {what[:34]:<34} {v.classification:<17}"
        if len(names) == 2:
            row += " | " + ("yes" if kinds[0][0] == kinds[1][0] else "NO")
        lines.append(row)
    for name in names:
        vs = result.verdicts[name]
        fr = sum(v.classification == "FALSE ROLLBACK" for v in vs)
        mr = sum(v.classification == "MISSED REGRESSION" for v in vs)
        lines.append(f"{name}: {fr} false rollback(s), {mr} missed regression(s) out of {len(vs)} change(s)")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(f"({result.seconds:.1f}s)")
    return "\n".join(lines)
