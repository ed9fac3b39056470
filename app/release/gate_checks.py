"""Gates, the I/O side: ask a gate point's webhooks, read its approvals, record what they said; and
approve a manual gate (API, CLI, dashboard, Slack button).

The tick (workers/tick.py) calls `observe_gates` when `decide` asks for a gate point's gates, then
decides again on the answers (app/core/gate_rules.py). Every answer is recorded on the release (its gate
record and an event), and a gate that said go or no-go is never asked again. An unreachable
webhook is asked again at a later tick, after a backoff (or the receiver's Retry-After).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from app.context import Context, UnknownService
from app.core.config.gates import ManualGate, WebhookGate
from app.core.config.policy import PolicyConfig
from app.core.gate_rules import PROMOTION, describe_point, gates_at, step_point
from app.core.models import Event, GateObservation, GateObservations, Release
from app.release.hooks import release_fields
from app.store.gate_records import field
from integrations.notify.gate_webhook import ask
from integrations.notify.interface import MissingSecret

log = logging.getLogger("sluice.gates")
MAX_BACKOFF = 60.0


def backoff(attempts: int) -> float:
    """1s, 2s, 4s ... up to a minute between calls to an unreachable gate (the tick's interval is the floor)."""
    return min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1))


def observe_gates(ctx: Context, release: Release, policy: PolicyConfig, point: str, now: float) -> GateObservations:
    """What each gate of `point` says now: ask the webhooks that have not answered (when their retry is
    due), and read the approvals. Every change is recorded on the release."""
    records = ctx.store.gates.records(release.id)
    approvals = ctx.store.gates.approvals(release.id)
    seen = GateObservations(point=point)
    for gate in gates_at(policy, point):
        key = field(point, gate.name)
        if isinstance(gate, ManualGate):
            seen.gates[gate.name] = _manual(ctx, release, point, gate, records.get(key), approvals.get(key), now)
        else:
            seen.gates[gate.name] = _webhook(ctx, release, policy, point, gate, records.get(key), now)
    return seen


def _manual(
    ctx: Context,
    release: Release,
    point: str,
    gate: ManualGate,
    record: dict[str, Any] | None,
    approval: dict[str, Any] | None,
    now: float,
) -> GateObservation:
    if record is None:
        # The release asks for this approval from now on: the record is what `approve` checks.
        record = {"kind": "manual", "point": point, "gate": gate.name, "status": "pending", "since": now}
        event = Event(
            at=now,
            type="gate_waiting",
            message=f"waiting for approval: {gate.name} (before {describe_point(point)})",
            data={"gate": gate.name, "point": point},
        )
        ctx.store.gates.save(release.id, point, gate.name, record, event)
    if approval is not None:
        by = str(approval.get("by", "?"))
        return GateObservation(
            name=gate.name, kind="manual", status="go", since=record["since"], by=by, detail=f"approved by {by}"
        )
    return GateObservation(name=gate.name, kind="manual", status="pending", since=record["since"])


def _webhook(
    ctx: Context,
    release: Release,
    policy: PolicyConfig,
    point: str,
    gate: WebhookGate,
    record: dict[str, Any] | None,
    now: float,
) -> GateObservation:
    record = dict(record or {"kind": "webhook", "point": point, "gate": gate.name, "status": "pending", "attempts": 0})
    if record["status"] in ("go", "no_go") or record.get("next_attempt_at", 0) > now:
        return _observation(gate, record)
    payload = gate_payload(release, policy, point, gate)
    try:
        answer = ask(gate, payload, delivery_id=f"{release.id}:{point}:{gate.name}")
        status, detail, retry_after, http = answer.status, answer.detail, answer.retry_after, answer.http_status
    except MissingSecret as exc:  # a configuration error that asking again cannot fix
        status, detail, retry_after, http = "no_go", str(exc), None, None
    attempts = int(record.get("attempts", 0)) + 1
    record.update(status=status, detail=detail, attempts=attempts, http_status=http, at=now)
    record.setdefault("since", now)
    if status == "unreachable":
        wait = max(backoff(attempts), retry_after or 0.0)
        record["next_attempt_at"] = now + wait
        message = f"gate '{gate.name}' unreachable (attempt {attempts}): {detail}; next attempt in {wait:.0f}s"
    else:
        record.pop("next_attempt_at", None)
        message = f"gate '{gate.name}' said {'go' if status == 'go' else 'no-go'}: {detail}"
    event = Event(
        at=now,
        type=f"gate_{status}",
        message=message + f" (before {describe_point(point)})",
        data={"gate": gate.name, "point": point, "status": http, "attempt": attempts},
    )
    ctx.store.gates.save(release.id, point, gate.name, record, event)
    log.info("release %s: %s", release.id, message, extra={"release_id": release.id})
    return _observation(gate, record)


def _observation(gate: WebhookGate, record: dict[str, Any]) -> GateObservation:
    return GateObservation(
        name=gate.name,
        kind="webhook",
        status=record["status"],
        detail=record.get("detail", ""),
        since=record.get("since"),
    )


def gate_payload(release: Release, policy: PolicyConfig, point: str, gate: WebhookGate) -> dict[str, Any]:
    """What a webhook gate is sent: the release (as hooks see it) and the step about to start."""
    step: dict[str, Any] | None = None
    if point != PROMOTION:
        index = int(point.removeprefix("step-")) - 1
        step = {"number": index + 1, "weight": policy.steps[index].weight}
    return {
        "event": "gate",
        "gate": gate.name,
        "point": point,
        "before": "promotion" if point == PROMOTION else "step",
        "step": step,
        "release": release_fields(release),
        "url": f"/api/v1/releases/{release.id}",
    }


# --- approving ----------------------------------------------------------------------------------------


class ApprovalError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Approval:
    release: Release
    point: str
    gate: str
    by: str
    already: bool  # approved earlier (by `by`): nothing changed


def upcoming_point(release: Release, policy: PolicyConfig) -> str:
    """The gate point the release reaches next: before its first step, its next step, or promotion."""
    if release.state == "pending":
        return step_point(0)
    if release.step >= len(policy.steps) - 1:
        return PROMOTION
    return step_point(release.step + 1)


def approve(
    ctx: Context, release_id: str, by: str, via: str, gate: str | None = None, point: str | None = None
) -> Approval:
    """Approve a manual gate the release is waiting for (the one named, or the first still waiting).
    Idempotent: approving again answers who approved first, and changes nothing."""
    release = ctx.store.get(release_id)
    if release is None:
        raise ApprovalError(404, f"no release {release_id!r}; list releases with GET /api/v1/releases")
    try:
        policy = ctx.locate(release)[2]
    except UnknownService as exc:
        raise ApprovalError(409, f"cannot approve: {exc}") from None
    point = point or upcoming_point(release, policy)
    manual = [g.name for g in gates_at(policy, point) if isinstance(g, ManualGate)]
    records = ctx.store.gates.records(release.id)
    approvals = ctx.store.gates.approvals(release.id)
    asked = [name for name in manual if field(point, name) in records]
    if gate is not None and gate not in manual:
        raise ApprovalError(404, f"release {release.id} has no manual gate {gate!r} before {describe_point(point)}")
    if gate is None:
        waiting = [name for name in asked if field(point, name) not in approvals]
        gate = next(iter(waiting or asked), None)
    if gate is not None and field(point, gate) in approvals:
        earlier = approvals[field(point, gate)]
        return Approval(release, point, gate, str(earlier.get("by", "?")), already=True)
    if release.terminal:
        raise ApprovalError(409, f"release {release.id} is {release.state}: there is nothing to approve")
    if gate is None or gate not in asked:
        raise ApprovalError(
            409,
            f"release {release.id} is not waiting for approval (it is {release.state}, step {release.step + 1}"
            + (f": {release.reason}" if release.reason else "")
            + ")",
        )
    now = time.time()
    event = Event(
        at=now,
        type="approved",
        message=f"gate '{gate}' approved by {by} (via {via}) before {describe_point(point)}",
        data={"gate": gate, "point": point, "by": by, "via": via},
    )
    first = ctx.store.gates.approve(release.id, point, gate, {"by": by, "via": via, "at": now}, event)
    if first is not None:  # another click won the race
        return Approval(release, point, gate, str(first.get("by", "?")), already=True)
    ctx.store.gates.hurry_tick(release.id, release.seq, now)
    log.info("release %s: gate %s approved by %s via %s", release.id, gate, by, via, extra={"release_id": release.id})
    return Approval(release, point, gate, by, already=False)


# --- history (sluice replay) -------------------------------------------------------------------------------


def gates_as_of(ctx: Context, release_id: str, policy: PolicyConfig, point: str, at: float) -> GateObservations:
    """What the gates of `point` had said by time `at`, from the release's records (nothing is asked):
    a replay decides on the answers the live release got, when it got them."""
    records = ctx.store.gates.records(release_id)
    approvals = ctx.store.gates.approvals(release_id)
    seen = GateObservations(point=point)
    for gate in gates_at(policy, point):
        key = field(point, gate.name)
        record, approval = records.get(key) or {}, approvals.get(key)
        since = record.get("since")
        if since is not None and since > at:
            since = None  # not asked yet at that time
        if isinstance(gate, ManualGate):
            if approval is not None and approval.get("at", float("inf")) <= at:
                by = str(approval.get("by", "?"))
                seen.gates[gate.name] = GateObservation(name=gate.name, kind="manual", status="go", since=since, by=by)
            else:
                seen.gates[gate.name] = GateObservation(name=gate.name, kind="manual", status="pending", since=since)
            continue
        status = record.get("status", "pending")
        if status in ("go", "no_go") and record.get("at", float("inf")) > at:
            status = "unreachable" if since is not None and record.get("attempts", 1) > 1 else "pending"
        if since is None:
            status = "pending"
        seen.gates[gate.name] = GateObservation(
            name=gate.name, kind="webhook", status=status, detail=record.get("detail", ""), since=since
        )
    return seen
