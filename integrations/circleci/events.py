"""CircleCI outbound webhooks: signature v1 verification, the fields a version template may use, and
which events announce a deploy (the `circleci.projects` section of the configuration).

CircleCI signs the raw body: `circleci-signature: v1=<hex HMAC-SHA256(secret, body)>[,v2=...]`.
No timestamp is signed, so receivers de-duplicate on the payload's top-level `id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.core.announcements import Announcement, Ignored, PayloadError
from app.core.models import CIContext
from app.core.names import check_label_value

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
# The fields that are numbers in CircleCI's payloads; all others are strings. A payload whose field
# has another type (`"number": true`) is refused rather than rendered into a version like `1.0.True`.
NUMBER_FIELDS = frozenset({"pipeline.number", "job.number"})
# GitHub App pipelines (project slug `circleci/<org-id>/<project-id>`) carry no `pipeline.vcs`.
GITHUB_APP_MISSING = frozenset(f for f in VERSION_FIELDS if f.startswith("pipeline.vcs."))
# The two spellings CircleCI uses for a VCS in project slugs (`gh/org/repo` in the UI and API v1.1,
# `github/org/repo` in webhooks and API v2).
_VCS_SPELLINGS = {"gh": "github", "bb": "bitbucket"}


def canonical_slug(slug: str) -> str:
    """One spelling of a project slug: `gh/` and `github/` (`bb/` and `bitbucket/`) are the same
    project; case does not matter. `circleci/<org-id>/<project-id>` (GitHub App) stays as it is."""
    vcs, sep, rest = slug.strip().lower().partition("/")
    return _VCS_SPELLINGS.get(vcs, vcs) + sep + rest


def github_app_gaps(template: str) -> list[str]:
    """The fields of a version template that a GitHub App pipeline's payload does not have."""
    return [p for p in template_placeholders(template) if p in GITHUB_APP_MISSING]


class IgnoredUnmatchedDeploy(Ignored):
    """A successful-or-not deploy job (or workflow) whose name is configured, from a project slug that
    no `circleci.projects` entry matches: most likely a slug spelt differently. Counted and logged."""

    slug: str


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
        if found is None or found == "":
            raise TemplateError(f"the payload has no {name} for the version template {template!r}")
        if name in NUMBER_FIELDS:
            if not isinstance(found, int) or isinstance(found, bool):
                raise TemplateError(f"{name} must be a number, not {json.dumps(found)[:40]}")
            text = str(found)
        elif isinstance(found, str):
            text = found
        else:
            raise TemplateError(f"{name} must be a string, not {json.dumps(found)[:40]}")
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
        known = {canonical_slug(p.slug) for p in circleci.projects}
        if canonical_slug(slug) in known:
            return Ignored(reason=f"{what} of project {slug!r} is not a deploy in circleci.projects")
        reason = f"project {slug!r} is not in circleci.projects"
        if circleci.names_a_deploy(job_name, workflow_name if event_type != "job-completed" else None):
            configured = ", ".join(sorted(p.slug for p in circleci.projects))
            return IgnoredUnmatchedDeploy(
                reason=f"{reason} (configured: {configured}); {what} looks like a deploy", slug=slug
            )
        return Ignored(reason=reason)
    if status != "success":
        return Ignored(reason=f"{what} finished with status {status!r}; only a successful deploy starts a release")
    try:
        version = check_label_value(render_version(mapping.version, data), "version")
    except ValueError as exc:  # TemplateError included
        raise PayloadError(f"version template {mapping.version!r}: {exc}") from None
    try:
        ci = CIContext.model_validate(
            {
                "provider": "circleci",
                "project_slug": slug,
                "workflow_id": _lookup(data, ("workflow", "id")),
                "pipeline_id": _lookup(data, ("pipeline", "id")),
                "pipeline_number": _lookup(data, ("pipeline", "number")),
                "job_number": _lookup(data, ("job", "number")),
                "job_name": job_name,
                "build_url": build_url(data),
            },
            strict=True,  # a `true` pipeline number is refused, not read as 1
        )
    except ValidationError as exc:
        raise PayloadError("the payload has invalid CircleCI ids", exc) from None
    return Announcement(
        service=mapping.service, version=version, application=mapping.application, ci=ci, trigger="circleci"
    )
