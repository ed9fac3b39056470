"""What the API, the CLI and the dashboard show of a fleet: one thing, with its waves and each member's state."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from app.context import Context
from app.core.fleet import Fleet, FleetState, WaveState
from app.core.models import CIContext, Delivery, Event, Release


class FleetMember(BaseModel):
    application: str
    release: str | None = Field(None, description="The member release's id (none: not started, or skipped).")
    state: str = Field(
        description="The release's state, or `waiting` (its wave has not started), `skipped`, `problem`."
    )
    source_version: str | None = None
    current_step: int | None = None
    reason: str | None = None
    rolled_back_by: str | None = Field(None, description="The rollback release that put the previous version back.")
    status_url: str | None = None


class FleetWaveView(BaseModel):
    number: int
    state: WaveState
    members: list[FleetMember]
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None


class FleetView(BaseModel):
    id: str
    name: str
    service: str
    version: str
    state: FleetState
    reason: str | None = None
    on_failure: str
    current_wave: int = Field(description="The wave in progress (1-based), or the one that ended the fleet.")
    awaiting_approval: int | None = Field(None, description="The wave that waits for a person's approval to start.")
    approvals: dict[str, str] = Field(default_factory=dict, description="wave number -> who approved its start")
    created_at: float
    finished_at: float | None = None
    duration_seconds: float
    trigger: str
    ci: CIContext
    waves: list[FleetWaveView]


class FleetDetail(FleetView):
    events: list[Event] = Field(default_factory=list)
    deliveries: list[Delivery] = Field(default_factory=list, description="The fleet's own hooks (CI, told once).")


class FleetList(BaseModel):
    fleets: list[FleetView]


def _member(
    fleet: Fleet, app: str, wave_started: bool, skipped: str | None, problem: str | None, release: Release | None
) -> FleetMember:
    back = fleet.rollbacks.get(app)
    if release is not None:
        return FleetMember(
            application=app,
            release=release.id,
            state=release.state,
            source_version=release.source_version,
            current_step=release.step + 1 if release.step >= 0 else None,
            reason=release.reason,
            rolled_back_by=back,
            status_url=f"/api/v1/releases/{release.id}",
        )
    if problem is not None:
        return FleetMember(application=app, state="problem", reason=problem)
    if skipped is not None:
        return FleetMember(application=app, state="skipped", reason=skipped)
    return FleetMember(application=app, state="starting" if wave_started else "waiting")


def fleet_view(ctx: Context, fleet: Fleet, cls: type[FleetView] = FleetView, **extra: Any) -> FleetView:
    releases = {r.id: r for r in ctx.store.get_many(fleet.member_ids())}
    now = fleet.finished_at or time.time()
    waves = []
    for number, wave in enumerate(fleet.waves, start=1):
        members = [
            _member(
                fleet,
                app,
                wave.state != "pending",
                wave.skipped.get(app),
                wave.problems.get(app),
                releases.get(wave.releases.get(app, "")),
            )
            for app in wave.applications
        ]
        end = wave.finished_at or (fleet.finished_at if wave.started_at else None)
        waves.append(
            FleetWaveView(
                number=number,
                state=wave.state,
                members=members,
                started_at=wave.started_at,
                finished_at=wave.finished_at,
                duration_seconds=round((end or now) - wave.started_at, 1) if wave.started_at else None,
            )
        )
    return cls(
        **fleet.model_dump(
            include={
                "id",
                "name",
                "service",
                "version",
                "state",
                "reason",
                "on_failure",
                "created_at",
                "finished_at",
                "trigger",
                "ci",
            }
        ),
        current_wave=fleet.wave + 1,
        awaiting_approval=fleet.awaiting_approval(),
        approvals=fleet.approvals,
        duration_seconds=round(now - fleet.created_at, 1),
        waves=waves,
        **extra,
    )


def fleet_detail(ctx: Context, fleet: Fleet) -> FleetDetail:
    detail = fleet_view(
        ctx, fleet, FleetDetail, events=ctx.store.fleets.events(fleet.id), deliveries=ctx.store.deliveries(fleet.hooks)
    )
    assert isinstance(detail, FleetDetail)
    return detail
