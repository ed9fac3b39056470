"""Argo CD and Argo Rollouts notification bodies (as rendered by the templates in this folder),
and how a deployed version is read from them.

Argo renders templates without escaping, so the templates use `| toJson` for every value; the
bodies are still treated as untrusted input: unknown fields are ignored, known ones are checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ROLLOUT_START_EVENTS = ("rollout-updated", "rollout-completed")


class ArgoCDNotification(BaseModel):
    """The body of the `sluice-deployed` template (argocd-notifications-cm.yaml)."""

    model_config = ConfigDict(extra="ignore")

    event: str = "deployed"
    app: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(None, max_length=63)
    revision: str | None = Field(None, max_length=255)
    finishedAt: str | None = Field(None, max_length=64)  # noqa: N815 - Argo's field name
    phase: str | None = Field(None, max_length=64)
    health: str | None = Field(None, max_length=64)
    images: list[str] | None = Field(None, max_length=200)


class Container(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    image: str | None = Field(None, max_length=512)


class RolloutNotification(BaseModel):
    """The body of the `sluice-rollout-*` templates (argo-rollouts-notification-cm.yaml)."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1, max_length=64)
    rollout: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(None, max_length=63)
    phase: str | None = Field(None, max_length=64)
    podHash: str | None = Field(None, max_length=64)  # noqa: N815
    revision: str | None = Field(None, max_length=32)
    containers: list[Container] | None = Field(None, max_length=100)

    @property
    def images(self) -> list[str]:
        return [c.image for c in self.containers or [] if c.image]


def split_image(image: str) -> tuple[str, str | None]:
    """'registry:5000/org/web:1.0.371' -> ('registry:5000/org/web', '1.0.371'); a digest has no tag."""
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :] or None
    return ref, None


def image_tag(images: list[str], repository: str | None, service: str) -> str:
    """The tag of the service's image: the named repository, else the only image, else the image
    whose last path segment is the service's name. ValueError says which images were seen."""
    parsed = [split_image(i) for i in images]
    if repository:
        chosen = [p for p in parsed if p[0] == repository or p[0].rsplit("/", 1)[-1] == repository]
    elif len(parsed) == 1:
        chosen = parsed
    else:
        chosen = [p for p in parsed if p[0].rsplit("/", 1)[-1] == service]
    if not images:
        raise ValueError("the notification lists no images")
    if len({c for c in chosen}) != 1:
        raise ValueError(
            f"cannot tell which image is {service!r} among {sorted(images)[:10]}; set `image` in the argo mapping"
        )
    tag = chosen[0][1]
    if not tag:
        raise ValueError(f"image {chosen[0][0]!r} has no tag (pinned by digest?); use version_from: revision")
    return tag


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)
