"""Which Argo CD Application or Argo Rollout deploys which service (the `argo:` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.config.base import LabelValue, Name, Strict


class ArgoMapping(Strict):
    """An Argo CD Application (or Argo Rollout) that deploys a service, and where its version comes from."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="The Application / Rollout name.")
    service: LabelValue
    application: Name | None = None
    version_from: Literal["image_tag", "revision"] = Field(
        "image_tag", description="The deployed image's tag, or the Git revision (Argo CD) / pod hash (Rollouts)."
    )
    image: str | None = Field(
        None,
        max_length=255,
        description="image_tag: the image repository to read the tag of (default: the only image, or the one "
        "named like the service).",
    )


class ArgoConfig(Strict):
    applications: list[ArgoMapping] = Field(default_factory=list, description="Argo CD Applications.")
    rollouts: list[ArgoMapping] = Field(default_factory=list, description="Argo Rollouts.")
