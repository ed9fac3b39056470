"""Delivery outcome metrics: how releases end, per service, and how fast a bad one is caught and undone.

What a platform team reports on (the DORA measures a release agent can see):

- releases, by outcome: `promoted`, `rolled_back` (the judge failed it: the version never took all
  traffic), `aborted` (a person stopped it), `reverted` (a promoted version put back by a rollback
  or by its bake);
- change failure rate: (rolled_back + reverted) / every release that ended — a version that proved
  bad, whether caught during its release or after;
- time to detect: from the bad version's first traffic to the decision that failed it;
- time to restore: from its first traffic (for a revert: from the rollback's request or the bake's
  decision) until the router confirmed every request back on the good version;
- release duration: from announcement to the final decision.

Workers record them in Redis as labelled counters and histograms (app/telemetry/metrics.py serves
them on /metrics, so Grafana charts them; `summary` gives the dashboard and the API the same numbers).
Shadow releases change nothing and count nowhere. Recording never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from app.core.known_bad import ROLLBACK_TRIGGER
from app.core.models import Release
from app.store import StoreUnavailable

if TYPE_CHECKING:
    from app.store import Store

log = logging.getLogger("sluice.metrics")
LABELS = ("application", "service")
OUTCOMES = ("promoted", "rolled_back", "aborted", "reverted")
FAILURES = ("rolled_back", "reverted")

COUNTER = (
    "delivery_releases",
    "Releases that ended, by application, service and outcome (promoted, rolled_back, aborted, reverted).",
    (*LABELS, "outcome"),
)
_MINUTES = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...], tuple[str, ...]]] = {
    "delivery_release_duration_seconds": (
        "From a release's announcement to its final decision.",
        (60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0),
        LABELS,
    ),
    "delivery_time_to_detect_seconds": (
        "From a bad version's first traffic to the decision that failed it.",
        (5.0, *_MINUTES),
        LABELS,
    ),
    "delivery_time_to_restore_seconds": (
        "From a bad version's first traffic (a revert: the rollback's request) until the router "
        "confirmed all traffic back on the good version.",
        (1.0, 5.0, *_MINUTES),
        LABELS,
    ),
}


def outcome(release: Release) -> str | None:
    """How a finished release counts, or None while it runs."""
    if not release.terminal:
        return None
    if release.trigger == ROLLBACK_TRIGGER:
        return "reverted" if release.state == "succeeded" else None
    if release.state == "failed" and release.bake_started_at is not None:
        return "reverted"  # promoted, then put back by its bake (docs/bake.md)
    return {"succeeded": "promoted", "failed": "rolled_back", "aborted": "aborted"}.get(release.state)


def record_end(store: Store, release: Release, now: float | None = None) -> None:
    """When a decision ended `release`: its outcome, its duration and (failed) its time to detect."""
    result = outcome(release)
    if release.shadow or result is None:
        return
    now = time.time() if now is None else now
    labels = (release.application, release.service)
    observations = [_observe("delivery_release_duration_seconds", labels, now - release.created_at)]
    first = release.judge.first_traffic_at
    if result == "rolled_back" and first is not None:
        observations.append(_observe("delivery_time_to_detect_seconds", labels, now - first))
    _add(store, [(COUNTER[0], (*labels, result))], observations)


def record_restored(store: Store, release: Release, confirmed: float) -> None:
    """When the router confirmed weights: if they put a failed release's traffic back on stable, or
    are a rollback's (its one step is all traffic on the previous version), the service is restored."""
    if release.shadow:
        return
    if release.trigger == ROLLBACK_TRIGGER:
        since = release.created_at if not release.terminal else None  # its step, not a repeat at the end
    elif release.state == "failed" and release.bake_started_at is not None:
        since = release.finished_at  # a bake's revert: from its decision, as a rollback from its request
    else:
        since = release.judge.first_traffic_at if release.state == "failed" else None
    if since is None:  # not a restore, or failed before any traffic moved: nothing to restore
        return
    labels = (release.application, release.service)
    _add(store, [], [_observe("delivery_time_to_restore_seconds", labels, confirmed - since)])


def _observe(name: str, labels: Sequence[str], value: float) -> tuple[str, Sequence[str], str, float]:
    value = max(0.0, value)
    bucket = next((f"b:{b}" for b in HISTOGRAMS[name][1] if value <= b), "b:+Inf")
    return name, labels, bucket, value


def _add(
    store: Store,
    counts: list[tuple[str, Sequence[str]]],
    observations: list[tuple[str, Sequence[str], str, float]],
) -> None:
    try:
        store.metrics.add(counts, observations)
    except StoreUnavailable:
        log.warning("could not record delivery metrics", exc_info=True)


# --- read back: the dashboard's and the API's summary ------------------------------------------------


class ServiceDelivery(BaseModel):
    """One service's delivery outcomes since Sluice's metrics began (they live in Redis)."""

    application: str
    service: str
    releases: int = Field(description="Releases that ended.")
    outcomes: dict[str, int] = Field(description="Releases by outcome.")
    change_failure_rate: float | None = Field(description="(rolled_back + reverted) / releases; None before any.")
    mean_time_to_detect_seconds: float | None = None
    mean_time_to_restore_seconds: float | None = None
    mean_release_duration_seconds: float | None = None


class DeliveryReport(BaseModel):
    services: list[ServiceDelivery]


def summary(store: Store) -> list[ServiceDelivery]:
    """Per service, from the same counters and histograms /metrics serves."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for values, value in store.metrics.counter(COUNTER[0]).items():
        if len(values) == 3 and values[2] in OUTCOMES:
            counts.setdefault((values[0], values[1]), {})[values[2]] = int(value)
    means: dict[str, dict[tuple[str, ...], float]] = {}
    for name in HISTOGRAMS:
        means[name] = {
            labels: raw["sum"] / raw["count"]
            for labels, raw in store.metrics.histogram_series(name).items()
            if raw.get("count")
        }
    rows = []
    for (application, service), by_outcome in sorted(counts.items()):
        total = sum(by_outcome.values())
        failed = sum(by_outcome.get(o, 0) for o in FAILURES)
        key = (application, service)
        rows.append(
            ServiceDelivery(
                application=application,
                service=service,
                releases=total,
                outcomes={o: by_outcome.get(o, 0) for o in OUTCOMES},
                change_failure_rate=round(failed / total, 4) if total else None,
                mean_time_to_detect_seconds=_rounded(means["delivery_time_to_detect_seconds"].get(key)),
                mean_time_to_restore_seconds=_rounded(means["delivery_time_to_restore_seconds"].get(key)),
                mean_release_duration_seconds=_rounded(means["delivery_release_duration_seconds"].get(key)),
            )
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
