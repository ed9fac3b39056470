"""Known-bad versions: what Sluice remembers of a version whose release failed or was rolled back.

A CI retry (or a re-run pipeline) announces the same build again; without a memory Sluice would
release it again minutes after taking it out. The entry is written with the decision that ends
the release (app/release/engine.py, in the same Redis transaction), read by the intake (app/release/intake.py)
to refuse the version, and cleared by a person (API, CLI) or by a forced release.

The rule: a release that **failed** marks its candidate; a **rollback** marks the version it took
out. An **aborted** release marks nothing: an abort is a person's choice (or a newer release
superseding this one), not evidence that the version is bad. A rollback release that fails marks
nothing either: it failed to route to the previous version, which says nothing about either. A
**shadow** release (app/release/shadow.py) marks nothing: it moved no traffic, its verdict is advice.

Pure: no I/O (the core layer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import BaseModel, Field

from app.core.models import CheckResult, Release

ROLLBACK_TRIGGER = "rollback"


class KnownBad(BaseModel):
    """One known-bad version of a service: which release made it so, why, and when."""

    version: str
    release_id: str = Field(description="The release that failed, or the rollback that took the version out.")
    reason: str = Field(description='e.g. "failed on errors-vs-stable at step 1" or "rolled back by alice".')
    at: float = Field(description="When (Unix time).")
    detail: str = Field("", description="The release's full reason.")

    def refusal(self) -> str:
        """Why a new announcement of the version is refused, and how to get past it."""
        return f"{self.version} {self.reason}, {_minute(self.at)}; send force: true to release it again"


def _minute(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


def failed_checks(results: Sequence[CheckResult]) -> list[str]:
    """The names of the checks that failed the step (first the decisive ones), each once."""
    failing = [r for r in results if r.verdict == "fail"]
    failing.sort(key=lambda r: not r.decisive)  # stable: keeps the decide order otherwise
    names: list[str] = []
    for r in failing or [r for r in results if r.verdict == "no_data"]:
        if r.name not in names:
            names.append(r.name)
    return names


def for_failure(release: Release, results: Sequence[CheckResult], now: float) -> KnownBad | None:
    """The entry a failed release leaves for its candidate (None for a rollback release)."""
    if release.trigger == ROLLBACK_TRIGGER:
        return None
    step = f"step {release.step + 1}" if release.step >= 0 else "before its first step"
    names = failed_checks(results)
    if names:
        reason = f"failed on {', '.join(names)} at {step}"
    else:  # the router, the configuration, a timeout: the release's own reason says which
        reason = f"failed at {step} ({_clip(release.reason or 'no reason recorded', 120)})"
    return KnownBad(
        version=release.target_version, release_id=release.id, reason=reason, at=now, detail=release.reason or ""
    )


def for_rollback(release: Release, now: float) -> KnownBad:
    """The entry a rollback leaves for the version it took traffic from (its source)."""
    who = release.actor or "someone"
    return KnownBad(
        version=release.source_version,
        release_id=release.id,
        reason=f"rolled back by {who}",
        at=now,
        detail=release.reason or "",
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
