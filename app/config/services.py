"""A service (one web service of an application) and how its policy is chosen."""

from __future__ import annotations

from pydantic import Field

from app.config.base import LabelValue, Name, Strict


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
    max_restarts: int = Field(
        2, ge=0, description="Kubernetes: container restarts of the candidate tolerated during a release."
    )
