"""Hook delivery: one attempt per job, every attempt recorded, retries scheduled with backoff.

Retries go through the same `due` schedule as ticks, so they survive a worker restart;
429 and 503 answers with Retry-After are honoured. An attempt is recorded before the call is
made, so a worker killed mid-call (or a delivery that kills its worker) still counts towards
`max_attempts` and shows on the release, instead of being retried silently forever.
"""

from __future__ import annotations

import logging
import random
import time

from app.context import Context, get_context
from app.core.models import Delivery, DeliveryAttempt, DeliveryState, Event
from app.core.redact import redact_clip
from app.telemetry import metrics
from app.telemetry.logs import release_context
from integrations.registry.hooks import MissingSecret, send

log = logging.getLogger("sluice.deliver")
MAX_BACKOFF = 300.0
# The delivery's lock is a lease renewed by a heartbeat while the attempt runs (as a tick's is,
# workers.tick.LEASE_TTL): a worker killed mid-call frees it within LEASE_TTL, and its attempt,
# due again LEASE_TTL + 1 s after it started, is retried then (same delivery id) instead of
# after the RQ job's whole 60 s timeout.
LEASE_TTL = 10.0
INTERRUPTED = "interrupted: the worker stopped before the answer was recorded"


def backoff(attempt: int) -> float:
    """1s, 2s, 4s ... capped, with jitter so that many deliveries do not retry in lockstep."""
    base = min(MAX_BACKOFF, 2.0 ** (attempt - 1))
    return float(base * (0.8 + 0.4 * random.random()))


def run_delivery(delivery_id: str) -> str:
    ctx = get_context()
    with release_context(delivery_id.split(":", 1)[0]):
        before = ctx.store.get_delivery(delivery_id)
        result = deliver(ctx, delivery_id)
        after = ctx.store.get_delivery(delivery_id)
    if before and after and len(after.attempts) > len(before.attempts):
        outcome = after.state if after.state != "pending" else "retry"
        metrics.record_delivery(ctx.store, after.hook, outcome)
    elif before and after and before.state == "pending" and after.state == "failed":
        metrics.record_delivery(ctx.store, after.hook, "failed")
    return result


def deliver(ctx: Context, delivery_id: str) -> str:
    with ctx.store.delivery_lease(delivery_id, ttl=LEASE_TTL) as lease:
        if lease is None:
            return _busy(ctx, delivery_id)
        delivery = ctx.store.get_delivery(delivery_id)
        if delivery is None:
            ctx.store.unschedule_delivery(delivery_id)
            return "gone"
        if delivery.state != "pending":
            ctx.store.unschedule_delivery(delivery_id)
            return f"already {delivery.state}"
        hook = next((h for h in ctx.config.hooks if h.name == delivery.hook), None)
        if hook is None:
            return _finish(ctx, delivery, "failed", f"hook {delivery.hook!r} is no longer configured")
        n = len(delivery.attempts)
        if n >= hook.max_attempts:  # the last attempt(s) were interrupted
            return _finish(ctx, delivery, "failed", f"{hook.name}: gave up after {n} attempts")
        started = time.time()
        # Recorded first (as interrupted), overwritten with the answer below.
        delivery.attempts.append(DeliveryAttempt(at=started, error=INTERRUPTED))
        ctx.store.save_delivery(delivery, started + LEASE_TTL + 1)
        try:
            # Senders take the delivery's JSON form (what the hook's receiver is sent from).
            outcome, secrets = send(hook, delivery.model_dump(), ctx)
        except MissingSecret as exc:
            delivery.attempts.pop()  # nothing was sent
            return _finish(ctx, delivery, "failed", str(exc))
        if not lease.held():
            # Our lease ran out mid-call (Redis unreachable for its whole TTL): another worker may
            # be re-sending this delivery and recording its own answer; ours must not overwrite it.
            log.warning("delivery %s: lease lost during the attempt; its answer is not recorded", delivery_id)
            return "lost: the delivery's lease expired during the attempt"
        attempt = DeliveryAttempt(
            at=started,
            duration_ms=round((time.time() - started) * 1000, 1),
            status=outcome.status,
            ok=outcome.ok,
            # Redacted, then cut (senders keep up to EXCERPT_CHARS so that no secret is cut in two first).
            response=redact_clip(outcome.excerpt, secrets, 300),
            error=redact_clip(outcome.error or "", secrets, 200) or None,
        )
        delivery.attempts[-1] = attempt
        n = len(delivery.attempts)
        if outcome.ok:
            return _finish(ctx, delivery, "delivered", f"delivered to {hook.name} ({outcome.status})")
        if not outcome.retryable:
            # The API's own message (CircleCI's {"message"}, "no approval job on hold"...) when there is one.
            detail = (attempt.error or attempt.response)[:160]
            answered = f" answered {outcome.status}" if outcome.status is not None else ""
            return _finish(ctx, delivery, "failed", f"{hook.name}{answered}: {detail}; not retried")
        if n >= hook.max_attempts:
            return _finish(ctx, delivery, "failed", f"{hook.name}: gave up after {n} attempts")
        # Honour Retry-After (429/503), within reason: a receiver cannot park a delivery for hours.
        wait = min(outcome.retry_after, MAX_BACKOFF) if outcome.retry_after is not None else backoff(n)
        delivery.next_attempt_at = time.time() + wait
        ctx.store.save_delivery(
            delivery,
            delivery.next_attempt_at,
            Event(
                at=time.time(),
                type="hook_retry",
                message=f"{hook.name}: attempt {n} ({outcome.status or attempt.error}); retrying in {wait:.1f}s",
                data={"delivery": delivery_id},
            ),
        )
        return f"retry in {wait:.1f}s"


def _busy(ctx: Context, delivery_id: str) -> str:
    """Another worker holds the delivery. The scheduler pushed it LEASE_SECONDS ahead when it
    claimed it; come back when the holder's lease would run out instead, so that a dead holder's
    delivery is retried within about one lease. Only if it is still scheduled (not finished)."""
    left = ctx.store.delivery_lease_left(delivery_id)
    ctx.store.bring_delivery_forward(delivery_id, time.time() + left + 0.5)
    return "busy"


def _finish(ctx: Context, delivery: Delivery, state: DeliveryState, message: str) -> str:
    delivery.state = state
    delivery.next_attempt_at = None
    ctx.store.save_delivery(
        delivery,
        None,
        Event(at=time.time(), type="hook_" + state, message=message, data={"delivery": delivery.id}),
    )
    if state == "failed":
        log.warning("delivery %s: %s", delivery.id, message, extra={"release_id": delivery.release_id})
    return message
