"""Argo CD and Argo Rollouts notification bodies (as rendered by the templates in this folder),
how a deployed version is read from them, and which ones announce a deploy (the `argo` section
of the configuration maps an Application / Rollout to a service).

Argo renders templates without escaping, so the templates use `| toJson` for every value; the
bodies are still treated as untrusted input: unknown fields are ignored, known ones are checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.announcements import Announcement, Ignored, PayloadError
from app.core.models import CIContext
from app.core.names import check_label_value

if TYPE_CHECKING:
    from integrations.argo.config import ArgoConfig, ArgoMapping

M = TypeVar("M", bound=BaseModel)

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


def _parse(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError("the notification has invalid fields", exc) from None


def _version(mapping: ArgoMapping, images: list[str], revision: str | None) -> str:
    try:
        if mapping.version_from == "revision":
            if not revision:
                raise ValueError("the notification carries no revision")
            return check_label_value(revision, "version")
        return check_label_value(image_tag(images, mapping.image, mapping.service), "version")
    except ValueError as exc:
        raise PayloadError(f"cannot read the version of {mapping.name!r}: {exc}") from None


def _announcement(mapping: ArgoMapping, version: str, namespace: str | None, source: str, key: str) -> Announcement:
    return Announcement(
        service=mapping.service,
        version=version,
        application=mapping.application,
        namespace=namespace,
        ci=CIContext(provider=source),
        trigger=source,
        event_key=key,
    )


def announce_argocd(argo: ArgoConfig, data: dict[str, Any]) -> Announcement | Ignored:
    """A Succeeded sync of a mapped Application; one (app, revision, finishedAt) is one event."""
    note = _parse(ArgoCDNotification, data)
    mapping = next((m for m in argo.applications if m.name == note.app), None)
    if mapping is None:
        return Ignored(reason=f"Argo CD application {note.app!r} is not in argo.applications")
    if note.phase is not None and note.phase != "Succeeded":
        return Ignored(reason=f"sync phase is {note.phase!r}; only a Succeeded sync starts a release")
    if note.health is not None and note.health not in ("Healthy", "Progressing"):
        return Ignored(reason=f"application health is {note.health!r}")
    version = _version(mapping, note.images or [], note.revision)
    key = f"{note.app}:{note.revision or version}:{note.finishedAt or ''}"
    return _announcement(mapping, version, note.namespace, "argocd", key)


def announce_rollout(argo: ArgoConfig, data: dict[str, Any]) -> Announcement | Ignored:
    """An updated (or completed) mapped Rollout; one (rollout, revision, event) is one event."""
    note = _parse(RolloutNotification, data)
    mapping = next((m for m in argo.rollouts if m.name == note.rollout), None)
    if mapping is None:
        return Ignored(reason=f"rollout {note.rollout!r} is not in argo.rollouts")
    if note.event not in ROLLOUT_START_EVENTS:
        return Ignored(reason=f"event {note.event!r} does not start a release ({', '.join(ROLLOUT_START_EVENTS)} do)")
    version = _version(mapping, note.images, note.podHash if mapping.version_from == "revision" else None)
    key = f"{note.rollout}:{note.revision or note.podHash or version}:{note.event}"
    return _announcement(mapping, version, note.namespace, "argo-rollouts", key)
