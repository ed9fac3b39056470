"""The bake's effects around app/core/bake.py's pure decisions: what a baking release observes, and the
`rollback` hooks its revert sends.

A baking release is ticked like a running one (workers/tick.py): observe (here), decide
(app/core/bake.py `decide_bake`, through `decide`), record and act (app/release/engine.py: a revert
sets the router's weights back on the previous version and reads them back, as a rollback does).
Its state is the release's record in Redis, so a worker that dies mid-bake loses nothing: the next
tick carries on from `bake_started_at` / `bake_until`. See docs/bake.md.
"""

from __future__ import annotations

import time

from app.config_file.schema import SluiceConfig
from app.context import Context
from app.core.bake import reference_window
from app.core.models import Delivery, EvidenceObservation, Observations, Release, VersionCounts
from app.release.hooks import plan_deliveries


def observe_bake(ctx: Context, release: Release, now: float) -> Observations:
    """The new stable's counts since the promotion, and the previous version's over the reference
    window before the release (from the metrics backend: the router keeps no history). A backend
    that fails gives counts with their error: "no data", never an exception."""
    obs = Observations(at=now)
    started = time.monotonic()
    since = release.bake_started_at
    if since is None or release.bake_until is None:
        return obs
    evidence = EvidenceObservation(since=since)
    if now > since:

        def counts(version: str, start: float, end: float) -> VersionCounts:
            found = ctx.metrics_provider.response_counts(release.service, version, release.namespace, start, end)
            return VersionCounts(metrics=found)

        ref_start, ref_end = reference_window(release)
        evidence.candidate = counts(release.target_version, since, now)
        evidence.stable_before = counts(release.source_version, ref_start, ref_end)
    obs.evidence = evidence
    obs.completed_at = now + (time.monotonic() - started)
    return obs


def revert_deliveries(config: SluiceConfig, release: Release, now: float) -> list[Delivery]:
    """A bake's revert sends the `rollback` hooks a rollback by hand would (app/release/rollback.py):
    `source_version` the version taken out, `target_version` the one back (e.g. CircleCI's cleanup
    pipeline with `version: "{source_version}"` removes the bad one)."""
    as_rollback = release.model_copy(
        update={"source_version": release.target_version, "target_version": release.source_version}
    )
    return plan_deliveries(config, as_rollback, "rollback", now)
