"""The retention job: deletes finished releases past `SLUICE_RETENTION` (default 90 days) or beyond
`SLUICE_RETENTION_MAX_PER_SERVICE` (default 500) per service, with their events, evaluations and
hook deliveries; then the finished fleets that lost a member or are as old. Running, pending and
paused releases are never touched.

The scheduler's leader enqueues it every RETENTION_EVERY seconds (workers/scheduler.py). It is
idempotent and deletes in batches (app/store/retention.py); a lock keeps two runs from doing the
same work at once. The first run after an upgrade also backfills the listing indexes.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass

from app.context import get_context
from app.core.config.base import parse_duration
from app.store import Store

log = logging.getLogger("sluice.retention")
RETENTION_EVERY = 300.0
DEFAULT_RETENTION = 90 * 86400.0
DEFAULT_MAX_PER_SERVICE = 500
_DAYS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


class RetentionSettingError(ValueError):
    pass


@dataclass(frozen=True)
class RetentionSettings:
    max_age: float = DEFAULT_RETENTION  # seconds after a release finished
    max_per_service: int = DEFAULT_MAX_PER_SERVICE

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RetentionSettings:
        """From SLUICE_RETENTION (`90d`, `12h`, `30m`...) and SLUICE_RETENTION_MAX_PER_SERVICE;
        a value that does not parse raises RetentionSettingError saying how to write it."""
        env = dict(os.environ) if env is None else env
        raw_age = env.get("SLUICE_RETENTION", "").strip()
        raw_max = env.get("SLUICE_RETENTION_MAX_PER_SERVICE", "").strip()
        max_age, max_per_service = DEFAULT_RETENTION, DEFAULT_MAX_PER_SERVICE
        if raw_age:
            days = _DAYS_RE.match(raw_age)
            try:
                max_age = float(days.group(1)) * 86400 if days else parse_duration(raw_age)
            except ValueError:
                raise RetentionSettingError(
                    f"SLUICE_RETENTION={raw_age!r} is not a duration: write it like '90d', '12h' or '30m'"
                ) from None
            if max_age <= 0:
                raise RetentionSettingError("SLUICE_RETENTION must be longer than 0 (e.g. '90d')")
        if raw_max:
            if not raw_max.isascii() or not raw_max.isdigit() or int(raw_max) < 1:
                raise RetentionSettingError(
                    f"SLUICE_RETENTION_MAX_PER_SERVICE={raw_max!r} must be a whole number of at least 1 (e.g. 500)"
                )
            max_per_service = int(raw_max)
        return cls(max_age=max_age, max_per_service=max_per_service)


def apply_retention(store: Store, settings: RetentionSettings, now: float | None = None) -> int:
    """One run: backfill the indexes if they predate this Sluice, then delete what is past
    retention. Returns how many releases were deleted."""
    with store.lock("retention", ttl=600) as acquired:
        if not acquired:
            return 0  # another run is at it
        if not store.retention.indexed():
            seen = store.retention.backfill()
            log.info("retention: indexed %d stored releases", seen)
        now = time.time() if now is None else now
        pruned = store.retention.prune(now, settings.max_age, settings.max_per_service)
        fleets = store.fleets.prune(now - settings.max_age)  # after their members: see FleetStore.prune
    if pruned.deleted or pruned.kept:
        log.info(
            "retention: deleted %d finished releases (%d kept for now: a hook delivery is still due)",
            pruned.deleted,
            pruned.kept,
        )
    if fleets:
        log.info("retention: deleted %d finished fleets", fleets)
    return pruned.deleted


def run_retention() -> int:
    """RQ entry point."""
    return apply_retention(get_context().store, RetentionSettings.from_env())
