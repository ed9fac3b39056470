"""A service (one web service of an application) and how its policy is chosen."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.config.base import LabelValue, Name, Strict
from app.core.config.scaling import ScaleConfig

MODE_DESCRIPTION = (
    "shadow: judge every release (steps, checks, verdicts) but never change the router; "
    "hooks are marked `shadow: true` (docs/configuration.md: Shadow mode)."
)
SHADOW_HOOKS_DESCRIPTION = (
    "A shadow release's hooks: `marked` (sent, with `shadow: true` and [shadow] in text) or `none`. "
    "CircleCI hooks never fire for a shadow release unless the hook sets `shadow: true`."
)


class BumpPolicies(Strict):
    """Choose the policy by how far the version moves (semver): 1.2.3 -> 2.0.0 is a major bump."""

    major: Name | None = None
    minor: Name | None = None
    patch: Name | None = None
    default: Name | None = None


class ServiceConfig(Strict):
    name: LabelValue = Field(description="The service, as in the `app` label of its Deployments.")
    port: int = Field(8080, ge=1, le=65535)
    path: str = "/"
    policy: Name | BumpPolicies = Field(
        description="A policy name, or one per semver bump: {major: careful, minor: canary, patch: quick}."
    )
    stable_version: LabelValue | None = Field(
        None, description="The version running before Sluice's first release of this service."
    )
    backend: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,63}$",
        description="HAProxy backend for this service (default: the service name).",
    )
    route: LabelValue | None = Field(
        None,
        description="Kubernetes routers: the HTTPRoute / Ingress / HTTPProxy carrying this service's traffic "
        "(default: the service name).",
    )
    mode: Literal["live", "shadow"] = Field("live", description=MODE_DESCRIPTION)
    shadow_hooks: Literal["marked", "none"] | None = Field(
        None, description=SHADOW_HOOKS_DESCRIPTION + " Default: the policy's, else marked."
    )
    max_restarts: int = Field(
        2, ge=0, description="Kubernetes: container restarts of the candidate tolerated during a release."
    )
    scale: ScaleConfig | None = Field(
        None,
        description="Kubernetes routers: size the candidate for its share of traffic and scale the old version "
        "down after promotion (docs/configuration.md: Scale with traffic). Off when absent.",
    )
