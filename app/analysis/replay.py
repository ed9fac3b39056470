"""`sluice replay RELEASE`: re-run a past release's evaluations on Prometheus's stored data.

The same engine as the live path: at each recorded evaluation time the observations are rebuilt
with the metrics provider (`response_counts` over the same span, since the step's weights were
confirmed; the policy's query checks at that time) by the tick's own `observe_evidence`, and the
pure `decide()` judges them. The release state is carried forward as app/release/engine.py commits and
applies a decision (the same state table and hold topics), with each step's clock starting when the
router confirmed its weights in the record (or at the decision, where the replay decides
differently from what happened).

What is not history: the router's own counts (HAProxy's per-server responses, refused
connections), its health checks and the cluster's restarts are read live and not kept, so a
replay judges on the metrics provider's counts only. A live decision that rested on HAProxy's
counts can differ for that reason; the output says so. A replay under another policy judges the
traffic that actually flowed (the recorded split), whatever weights that policy would have set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from app.config_file.schema import SluiceConfig
from app.context import Context
from app.core.config.policy import PolicyConfig
from app.core.decide import decide
from app.core.models import CheckResult, Decision, Event, Observations, Release
from app.release.engine import decided
from app.release.gate_checks import gates_as_of
from integrations.routers.interface import RouterError

# Recorded event type -> decision kind.
KIND_OF_EVENT = {
    "started": "start",
    "step_passed": "advance",
    "succeeded": "promote",
    "failed": "fail",
    "aborted": "abort",
    "paused": "pause",
    "resumed": "resume",
    "hold": "hold",
    "reverted": "revert",
    "baked": "baked",
}
ROUTER_NOTE = (
    "router-side counts (HAProxy) and health checks are not historical: the replay judges on the "
    "metrics provider's counts only"
)


class ReplayError(LookupError):
    pass


@dataclass
class ReplayedDecision:
    at: float
    step: int  # the replayed release's step (0-based) when it decided
    recorded: str | None  # what happened at this time (a decision kind), None if nothing
    recorded_reason: str
    decision: Decision
    state: str  # the replayed release's state after the decision
    external: bool = False  # a recorded action that was not an evaluation (by hand, router error)
    verdicts: list[str] = field(default_factory=list)  # checks whose verdict differs from the record

    @property
    def differs(self) -> bool:
        return self.recorded is not None and self.recorded != self.decision.kind


@dataclass
class ReplayResult:
    release: Release
    policy: str
    steps: list[ReplayedDecision]
    final: Release
    notes: list[str]

    @property
    def differences(self) -> list[ReplayedDecision]:
        return [s for s in self.steps if s.differs]


class HistoryRouter:
    """The router as a replay sees it: nothing is historical (no counters, no health)."""

    def health(self, *_: Any) -> Any:
        raise RouterError("not historical", retryable=False)


def history_context(ctx: Context, config: SluiceConfig | None = None) -> Context:
    """A context for replays: the same store and metrics provider, routers that are never asked."""
    replay = dataclasses.replace(ctx, config=config or ctx.config, _routers={})
    replay.__dict__["store"] = ctx.store
    replay.__dict__["metrics_provider"] = ctx.metrics_provider
    for app in replay.config.applications:
        replay._routers[app.name] = HistoryRouter()  # type: ignore[assignment]
    return replay


def observe_history(ctx: Context, release: Release, policy: PolicyConfig, at: float) -> Observations:
    """What the tick's `observe` sees at `at`, minus what is not kept: router counts, health, cluster."""
    from app.release.bake import observe_bake
    from app.release.observe import observe_evidence

    obs = Observations(at=at)
    if release.state == "baking":  # the metrics backend's counts: historical, as the live bake reads them
        return observe_bake(ctx, release, at)
    if release.state != "running":
        return obs
    app, svc, _ = ctx.locate(release)
    provider = ctx.metrics_provider
    obs.checks = provider.observe_checks(policy, ctx.config.metrics, release, at)
    obs.evidence = observe_evidence(ctx, app, svc, policy, release, at)
    step = policy.steps[release.step]
    if step.requests is not None and release.step_started_at is not None:
        obs.step_requests = provider.step_requests(release, at, since=release.step_started_at)
    return obs


def carry(release: Release, decision: Decision, now: float, confirmed_at: float | None = None) -> Release:
    """The release after `decision`, as app/release/engine.py's commit_decision records it and apply_weights
    confirms it (at `confirmed_at`, default `now`), for every field `decide` reads."""
    new = decided(release, decision, now)
    if decision.weights is not None and decision.weights != release.desired_weights:
        new.weights_applied = True
        # apply_weights: the step begins when its weights are confirmed (no router counters here)
        if not new.terminal:
            confirmed = now if confirmed_at is None else confirmed_at
            new.step_started_at = confirmed
            new.judge = new.judge.model_copy(update={"router_mark": None})
            if new.step == 0:
                new.judge.first_traffic_at = confirmed
    return new


def _initial(release: Release, policy: PolicyConfig) -> Release:
    """The release as it was created: pending, nothing decided."""
    return Release(
        id=release.id,
        application=release.application,
        namespace=release.namespace,
        service=release.service,
        source_version=release.source_version,
        target_version=release.target_version,
        policy=policy.name,
        created_at=release.created_at,
        updated_at=release.created_at,
        ci=release.ci,
        trigger=release.trigger,
        desired_weights={release.source_version: 100},
        mode=release.mode,  # a shadow release is judged on the weights it read, not the ones it would set
        shadow_hooks=release.shadow_hooks,
    )


def timeline(events: list[Event], evaluations: list[CheckResult]) -> list[tuple[float, str | None, str, bool]]:
    """(time, recorded decision kind, its reason, external) for every recorded evaluation or decision."""
    evaluated = {r.at for r in evaluations}
    decided: dict[float, tuple[str, str]] = {}
    for e in events:
        if e.type in KIND_OF_EVENT and (e.type != "hold" or e.at not in decided):
            decided[e.at] = (KIND_OF_EVENT[e.type], e.message)
    out: list[tuple[float, str | None, str, bool]] = []
    for t in sorted(evaluated | set(decided)):
        kind, reason = decided.get(t, ("hold", ""))
        external = t not in evaluated and kind not in ("start", "hold")
        out.append((t, kind, reason, external))
    return out


def replay(
    ctx: Context, release_id: str, policy_name: str | None = None, config: SluiceConfig | None = None
) -> ReplayResult:
    """Re-run a recorded release under its policy (or `policy_name`, from `config` if given)."""
    original = ctx.store.get(release_id)
    if original is None:
        raise ReplayError(f"no release {release_id!r}")
    hctx = history_context(ctx, config)
    name = policy_name or original.policy
    try:
        policy = hctx.config.policy(name)
    except StopIteration:
        raise ReplayError(f"no policy {name!r} in the configuration") from None
    events = ctx.store.events(release_id)
    evaluations = ctx.store.evaluations(release_id)
    by_time: dict[float, list[CheckResult]] = {}
    for r in evaluations:
        by_time.setdefault(r.at, []).append(r)
    confirmations = [
        (e.at, e.data.get("requested") or e.data.get("weights")) for e in events if e.type == "weights_set"
    ]
    # A shadow release confirms by reading the router: what it would have set, and what it saw.
    confirmations += [(e.at, e.data.get("would_set")) for e in events if e.type == "weights_observed"]
    observed = [(e.at, e.data.get("weights")) for e in events if e.type == "weights_observed"]

    current = _initial(original, policy)
    hctx.locate(current)  # raises UnknownService if the service left the configuration
    steps: list[ReplayedDecision] = []
    for t, recorded, reason, external in timeline(events, evaluations):
        if current.terminal:
            steps.append(
                ReplayedDecision(
                    t, current.step, recorded, reason, Decision(kind="hold", reason="(ended)"), current.state
                )
            )
            continue
        if current.shadow:  # the router's weights as last read by then (app/release/shadow.py)
            seen = [w for at, w in observed if at <= t and w is not None]
            current = current.model_copy(update={"observed_weights": seen[-1] if seen else None})
        if external:
            decision = _external(current, recorded, reason)
        else:
            obs = observe_history(hctx, current, policy, t)
            decision = decide(current, policy, obs, t)
            if decision.gates_needed is not None:  # the gates' recorded answers, as of t
                obs.gates = gates_as_of(hctx, original.id, policy, decision.gates_needed, t)
                decision = decide(current, policy, obs, t)
        confirmed = None
        if decision.weights is not None and recorded == decision.kind:
            confirmed = next((at for at, w in confirmations if at >= t and w == decision.weights), None)
        step_before = current.step
        current = carry(current, decision, t, confirmed)
        verdicts = _verdict_diffs(by_time.get(t, []), decision.results)
        steps.append(ReplayedDecision(t, step_before, recorded, reason, decision, current.state, external, verdicts))
    notes = [ROUTER_NOTE]
    if policy.name != original.policy:
        notes.append(
            f"policy {policy.name} instead of {original.policy}: judged on the traffic that actually flowed "
            "(the recorded split), whatever weights this policy would have set"
        )
    if not current.terminal:
        notes.append(
            f"the record ends with the replay still {current.state} (step {current.step + 1}): {current.reason}"
        )
    return ReplayResult(original, policy.name, steps, current, notes)


def _external(release: Release, kind: str | None, reason: str) -> Decision:
    """A recorded action that was not an evaluation (a person's pause/resume/promote/abort, a router
    error's fail-back): applied to the replay as it happened."""
    from app.core.decide import fail_back

    if kind in ("fail", "abort", "baked"):  # "baked" by hand: fail_back ends a bake
        return fail_back(release, reason, kind="abort" if kind == "baked" else kind)  # type: ignore[arg-type]
    if kind == "promote":
        return Decision(kind="promote", weights=release.weights_for(100), reason=reason)
    if kind in ("pause", "resume"):
        return Decision(kind=kind, reason=reason, consecutive_failures=release.consecutive_failures)
    return Decision(kind="hold", reason=reason, consecutive_failures=release.consecutive_failures)


def _verdict_diffs(recorded: list[CheckResult], replayed: list[CheckResult]) -> list[str]:
    mine = {r.name: r.verdict for r in replayed}
    return [
        f"{r.name}: {r.verdict} -> {mine[r.name]}" for r in recorded if r.name in mine and mine[r.name] != r.verdict
    ]


# --- the report -------------------------------------------------------------------------------------


def render(result: ReplayResult, verbose: bool = False) -> str:
    r = result.release
    t0 = r.created_at
    lines = [
        f"replay of {r.id}: {r.service} {r.source_version} -> {r.target_version}, policy {result.policy} "
        f"(recorded: {r.policy}, {r.state})",
        f"{'time':>7}  {'step':>4}  {'recorded':<9} {'replayed':<9}   reason (replayed)",
    ]
    for s in result.steps:
        if s.decision.reason == "(ended)" and not s.differs and not verbose:
            continue
        if s.decision.kind == "hold" and s.recorded == "hold" and not s.verdicts and not verbose:
            continue
        mark = "≠" if s.differs else "="
        extra = " [by hand / router]" if s.external else ""
        lines.append(
            f"{'+' + format(s.at - t0, '.0f') + 's':>7}  {s.step + 1:>4}  {s.recorded or '-':<9} "
            f"{s.decision.kind:<9} {mark} {_short(s.decision.reason)}{extra}"
        )
        for v in s.verdicts:
            lines.append(f"{'':>26}verdict differs: {v}")
    same = not result.differences and result.final.state == r.state
    lines.append(
        f"replayed: {result.final.state} — recorded: {r.state}; "
        + ("same decisions at every evaluation" if same else f"{len(result.differences)} decision(s) differ")
    )
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _short(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
