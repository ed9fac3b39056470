"""`scale:` of a service: Sluice sizes the candidate for its share of traffic and retires the old version.

Off unless the service has a `scale` block: a Deployment's replicas are often owned by something else
(a GitOps controller that would revert them, an operator), so Sluice changes them only when asked.
Kubernetes routers only (the configuration refuses it elsewhere)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.config.base import Duration, Strict


class ScaleConfig(Strict):
    with_traffic: bool = Field(
        True,
        description="Before a step, give the candidate ceil(stable's ready replicas x weight / 100) replicas "
        "(at least 1); when an HPA named like its Deployment targets it, raise the HPA's minReplicas instead.",
    )
    scale_down: Literal["sluice", "ci", "never"] = Field(
        "sluice",
        description="After promotion: Sluice scales the old version to 0 after `scale_down_delay` (sluice), "
        "CI's cleanup pipeline does (ci), or it stays as it is (never).",
    )
    scale_down_delay: Duration = Field(
        600.0, description="How long the old version keeps its size after promotion (a warm way back)."
    )
