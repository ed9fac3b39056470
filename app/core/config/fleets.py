"""Fleets: one announcement of `service@version` released over several applications (clusters), in waves.

The waves name applications, or shell-style patterns of their names (`us-*`), in the order they are
released (docs/fleets.md). Which applications a pattern means is resolved when a fleet starts
(`resolve_waves`), so a configuration reloaded mid-fleet does not move the fleet's members.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field, model_validator

from app.core.config.base import LabelValue, Name, Strict

# An application name, or a pattern of them: the name characters plus the shell's * ? [ ].
Member = Annotated[str, Field(pattern=r"^[A-Za-z0-9*?\[\]][A-Za-z0-9_.*?\[\]-]{0,62}$")]

ON_FAILURE_DESCRIPTION = (
    "When a wave fails: `rollback` puts the previous version back on every member that already released "
    "it (earlier waves, and members of the failed wave that succeeded); `hold` leaves them on the new version."
)


class FleetConfig(Strict):
    """A fleet: the service, its waves of applications, and what a failure does to the waves already done."""

    name: Name
    service: LabelValue = Field(description="The service the fleet releases (in every application of its waves).")
    waves: list[Annotated[list[Member], Field(min_length=1)]] = Field(
        min_length=1,
        description="Applications (or patterns such as `us-*`) per wave, in order: "
        "[[canary-cluster], [eu-1, eu-2], [us-*]]. A wave starts when every release of the one before succeeded.",
    )
    on_failure: Literal["rollback", "hold"] = Field("rollback", description=ON_FAILURE_DESCRIPTION)
    approve_before: list[Annotated[int, Field(ge=2)]] = Field(
        default_factory=list,
        description="Waves (numbered from 1) that wait, once the wave before succeeded, until a person approves "
        "them: `sluice fleet approve FLEET` or POST /api/v1/fleets/<id>/approve.",
    )

    @model_validator(mode="after")
    def _no_member_twice(self) -> FleetConfig:
        seen: set[str] = set()
        for wave in self.waves:
            for member in wave:
                if member in seen:
                    raise ValueError(f"fleet {self.name!r} names {member!r} twice; each wave lists other applications")
                seen.add(member)
        beyond = [n for n in self.approve_before if n > len(self.waves)]
        if beyond:
            raise ValueError(
                f"fleet {self.name!r}: approve_before names wave {beyond[0]}, but it has {len(self.waves)}"
            )
        return self


def resolve_waves(fleet: FleetConfig, applications: list[str]) -> list[list[str]]:
    """The applications of each wave, from the applications that hold the fleet's service (in the
    configuration's order). Raises ValueError naming a pattern that matches nothing or an
    application that two waves claim: both are mistakes the configuration check reports."""
    taken: dict[str, int] = {}
    waves: list[list[str]] = []
    for number, wave in enumerate(fleet.waves, start=1):
        members: list[str] = []
        for pattern in wave:
            matched = [a for a in applications if fnmatchcase(a, pattern)]
            if not matched:
                raise ValueError(
                    f"fleet {fleet.name!r}, wave {number}: {pattern!r} matches no application holding service "
                    f"{fleet.service!r}; those are: {', '.join(applications) or 'none'}"
                )
            for app in matched:
                if app in taken and taken[app] != number:
                    raise ValueError(
                        f"fleet {fleet.name!r}: application {app!r} is in wave {taken[app]} and wave {number}; "
                        "give each application one wave"
                    )
                if app not in members:
                    members.append(app)
                taken[app] = number
        waves.append(members)
    return waves
