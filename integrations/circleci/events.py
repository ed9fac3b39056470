"""CircleCI outbound webhooks: signature v1 verification, the fields a version template may use, and
which events announce a deploy (the `circleci.projects` section of the configuration).

CircleCI signs the raw body: `circleci-signature: v1=<hex HMAC-SHA256(secret, body)>[,v2=...]`.
No timestamp is signed, so receivers de-duplicate on the payload's top-level `id`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.announcements import Announcement, Ignored, PayloadError
from app.models import CIContext
from app.names import check_label_value

if TYPE_CHECKING:
    from integrations.circleci.config import CircleCIConfig

EVENTS = ("job-completed", "workflow-completed")

# What a version template such as "1.0.{pipeline.number}" may use. Only these are ever read from a
# payload: a template cannot reach into arbitrary (attacker-chosen) payload fields.
VERSION_FIELDS: dict[str, tuple[str, ...]] = {
    "pipeline.number": ("pipeline", "number"),
    "pipeline.id": ("pipeline", "id"),
    "pipeline.vcs.revision": ("pipeline", "vcs", "revision"),
    "pipeline.vcs.revision_short": ("pipeline", "vcs", "revision"),
    "pipeline.vcs.branch": ("pipeline", "vcs", "branch"),
    "pipeline.vcs.tag": ("pipeline", "vcs", "tag"),
    "job.number": ("job", "number"),
    "job.name": ("job", "name"),
    "workflow.name": ("workflow", "name"),
    "project.name": ("project", "name"),
}
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, header: str | None, body: bytes) -> bool:
    """True when one of the header's `v1=` signatures is the HMAC of the body (constant-time)."""
    if not header or not secret:
        return False
    expected = sign(secret, body).encode()
    ok = False
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == "v1" and hmac.compare_digest(value.strip().lower().encode(), expected):
            ok = True
    return ok


def template_placeholders(template: str) -> list[str]:
    return _PLACEHOLDER_RE.findall(template)


def check_version_template(template: str) -> str:
    unknown = [p for p in template_placeholders(template) if p not in VERSION_FIELDS]
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join('{' + u + '}' for u in unknown)} in version template {template!r}; "
            f"use {', '.join('{' + f + '}' for f in VERSION_FIELDS)}"
        )
    return template


class TemplateError(ValueError):
    """The payload lacks a field the version template needs."""


def _lookup(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def render_version(template: str, payload: dict[str, Any]) -> str:
    """Fill a version template from known payload fields only; the caller validates the result."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in VERSION_FIELDS:
            raise TemplateError(f"unknown field {{{name}}} in the version template")
        found = _lookup(payload, VERSION_FIELDS[name])
        if found is None or isinstance(found, dict | list) or found == "":
            raise TemplateError(f"the payload has no {name} for the version template {template!r}")
        text = str(found)
        return text[:7] if name.endswith("_short") else text

    return _PLACEHOLDER_RE.sub(value, template)


def build_url(payload: dict[str, Any]) -> str | None:
    """The job's page: job-completed payloads carry the workflow URL and the job number."""
    workflow_url = _lookup(payload, ("workflow", "url"))
    number = _lookup(payload, ("job", "number"))
    if isinstance(workflow_url, str) and workflow_url.startswith("https://"):
        return f"{workflow_url.rstrip('/')}/jobs/{number}" if isinstance(number, int) else workflow_url
    return None


def unsupported(event_type: object) -> Ignored | None:
    """An event type Sluice never acts on (answered at once, not remembered as processed)."""
    if event_type in EVENTS:
        return None
    return Ignored(reason=f"event type {event_type!r} is not one Sluice acts on ({', '.join(EVENTS)})")


def announce(circleci: CircleCIConfig, event_type: str, data: dict[str, Any]) -> Announcement | Ignored:
    """A successful deploy job (or workflow) named in `circleci.projects` announces the version its
    mapping's template renders, with the CircleCI ids hooks need (approve the held job, trigger the
    cleanup pipeline). Raises PayloadError for a payload that cannot be read."""
    slug = _lookup(data, ("project", "slug"))
    job_name = _lookup(data, ("job", "name")) if event_type == "job-completed" else None
    workflow_name = _lookup(data, ("workflow", "name"))
    if not isinstance(slug, str) or not slug:
        raise PayloadError("the payload has no project.slug")
    if event_type == "job-completed":
        what, status = f"job {job_name!r}", _lookup(data, ("job", "status"))
        mapping = circleci.deploy_for(slug, job_name, None)
    else:
        what, status = f"workflow {workflow_name!r}", _lookup(data, ("workflow", "status"))
        mapping = circleci.deploy_for(slug, None, workflow_name)
    if mapping is None:
        known = [p.slug for p in circleci.projects]
        if any(k.lower() == slug.lower() for k in known):
            return Ignored(reason=f"{what} of project {slug!r} is not a deploy in circleci.projects")
        return Ignored(reason=f"project {slug!r} is not in circleci.projects")
    if status != "success":
        return Ignored(reason=f"{what} finished with status {status!r}; only a successful deploy starts a release")
    try:
        version = check_label_value(render_version(mapping.version, data), "version")
    except ValueError as exc:  # TemplateError included
        raise PayloadError(f"version template {mapping.version!r}: {exc}") from None
    try:
        ci = CIContext(
            provider="circleci",
            project_slug=slug,
            workflow_id=_lookup(data, ("workflow", "id")),
            pipeline_id=_lookup(data, ("pipeline", "id")),
            pipeline_number=_lookup(data, ("pipeline", "number")),
            job_number=_lookup(data, ("job", "number")),
            job_name=job_name,
            build_url=build_url(data),
        )
    except ValidationError as exc:
        raise PayloadError("the payload has invalid CircleCI ids", exc) from None
    return Announcement(
        service=mapping.service, version=version, application=mapping.application, ci=ci, trigger="circleci"
    )
