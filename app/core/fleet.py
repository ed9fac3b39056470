"""A fleet: one version of one service released over several applications in waves (docs/fleets.md).

Plain data and the pure rules of a fleet's progress; the shell that stores, starts and steers it is
app/release/fleets.py. A wave's members are ordinary releases, one per application, with ids derived
from (fleet, wave, application) so that a wave started twice (a crash between creating a member and
recording it) finds the same releases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from app.core.models import CIContext, Event, Release

FleetState = Literal["running", "rolling_back", "succeeded", "failed", "rolled_back", "held", "aborted"]
# failed: the first wave failed, so no application had the version to roll back or hold.
FLEET_TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "rolled_back", "held", "aborted"})
WaveState = Literal["pending", "running", "succeeded", "failed", "aborted"]


class FleetWave(BaseModel):
    applications: list[str]
    state: WaveState = "pending"
    # application -> the id of its member release (filled when the wave starts)
    releases: dict[str, str] = Field(default_factory=dict)
    # application -> why it has no release: "already stable" (counts as released) or why it could not start
    skipped: dict[str, str] = Field(default_factory=dict)
    problems: dict[str, str] = Field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None


class Fleet(BaseModel):
    """`seq` counts the fleet's recorded changes: a commit names the seq it read, so two ticks that
    raced cannot both record a change (app/store/fleets.py)."""

    id: str
    name: str = Field(description="The fleet's name in the configuration (`fleets:`).")
    service: str
    version: str
    on_failure: Literal["rollback", "hold"] = "rollback"
    state: FleetState = "running"
    wave: int = Field(0, description="The wave in progress (0-based), or the one that ended the fleet.")
    waves: list[FleetWave]
    reason: str | None = None
    seq: int = 0
    created_at: float
    updated_at: float
    finished_at: float | None = None
    ci: CIContext = Field(default_factory=CIContext)
    trigger: str = "webhook"
    actor: str | None = None
    forced: bool = False
    approve_before: list[int] = Field(default_factory=list, description="Waves (from 1) that wait for a person.")
    approvals: dict[str, str] = Field(default_factory=dict, description="wave number -> who approved its start")
    # application -> id of the rollback release that put the previous version back (on_failure: rollback)
    rollbacks: dict[str, str] = Field(default_factory=dict)
    hooks: list[str] = Field(default_factory=list, description="ids of the fleet's own hook deliveries (CI)")

    @property
    def terminal(self) -> bool:
        return self.state in FLEET_TERMINAL

    def awaiting_approval(self) -> int | None:
        """The wave (from 1) that waits for a person's approval before it starts, if any."""
        number = self.wave + 1
        wave = self.waves[self.wave]
        waits = number in self.approve_before and str(number) not in self.approvals
        return number if self.state == "running" and wave.state == "pending" and waits else None

    def member_ids(self) -> list[str]:
        return [rid for wave in self.waves for rid in wave.releases.values()]


def member_release_id(fleet_id: str, wave: int, application: str) -> str:
    """The id of a wave's release in one application: the same however often the wave is started.
    `r-` plus the fleet's time stamp, so it sorts and reads like any release id."""
    digest = hashlib.sha256(f"{fleet_id}|{wave}|{application}".encode()).hexdigest()[:10]
    stamp = fleet_id.split("-")[1] if fleet_id.count("-") >= 2 else "0"
    return f"r-{stamp}-{digest}"


def released(release: Release) -> bool:
    """A member is done when its release succeeded: promoted, and past its bake if its policy bakes
    (a baking release is in a state of its own, not yet succeeded)."""
    return release.state == "succeeded"


@dataclass(frozen=True)
class WaveVerdict:
    state: WaveState  # running, succeeded or failed (aborted counts as failed: the fleet stops either way)
    reason: str = ""


def judge_wave(wave: FleetWave, members: dict[str, Release | None]) -> WaveVerdict:
    """The wave from its members' releases: failed at the first member that failed or was aborted
    (the fleet stops), succeeded when every member released, else still running."""
    for app, problem in wave.problems.items():
        return WaveVerdict("failed", f"{app}: {problem}")
    for app in wave.applications:
        release = members.get(app)
        if release is not None and release.terminal and not released(release):
            why = release.reason or release.state
            return WaveVerdict("failed", f"{app}: release {release.id} {release.state}: {why}")
    if all(app in wave.skipped or ((r := members.get(app)) is not None and released(r)) for app in wave.applications):
        return WaveVerdict("succeeded")
    return WaveVerdict("running")


def failure_state(fleet: Fleet, members: dict[str, Release | None]) -> FleetState:
    """Where a fleet goes when its wave fails (`members`: that wave's releases): nothing to undo when
    no member had released the version (failed), else by its policy (rolling back, then rolled_back;
    or held)."""
    done_any = fleet.wave > 0 or any(r is not None and released(r) for r in members.values())
    if not done_any:
        return "failed"
    return "rolling_back" if fleet.on_failure == "rollback" else "held"


def event(at: float, kind: str, message: str, **data: object) -> Event:
    return Event(at=at, type=kind, message=message, data=dict(data))
