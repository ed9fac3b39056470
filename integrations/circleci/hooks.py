"""The CircleCI hook kinds: approve the held approval job, cancel the workflow, trigger a pipeline.

Each plans its call when the event happens (the workflow id, the rendered parameters) and sends
it with the CircleCI API client (integrations/circleci/api.py).

Sluice's CircleCI token can act on every project its owner can see, but a release's CI context
(workflow id, project slug) comes from whoever announced the deploy. So Sluice acts only in the
project the *configuration* ties to the service (the hook's `project_slug`, else the
`circleci.projects` entries that deploy the service): before approving or cancelling a workflow
it asks CircleCI which project the workflow belongs to (GET /workflow/{id}), and a pipeline is
triggered in the configured project, never in one an announcement names.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, model_validator

from app.core.config.base import EnvName
from integrations.circleci.api import CircleCI
from integrations.circleci.events import canonical_slug
from integrations.notify.http import failed
from integrations.notify.interface import (
    HookBase,
    HookEnv,
    HookEvent,
    HookKind,
    Outcome,
    Plan,
    check_fields,
    render_payload,
    required_secret,
)

_SLUG_PATTERN = r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$"


class _CircleCIHook(HookBase):
    token_env: EnvName = Field("CIRCLECI_TOKEN", description="Environment variable holding a CircleCI API token.")
    project_slug: str | None = Field(
        None,
        pattern=_SLUG_PATTERN,
        description="The project this hook acts in, e.g. gh/acme/shop (default: the `circleci.projects` entry "
        "that deploys the release's service). A workflow of any other project is left alone.",
    )


class CircleCIApproveHook(_CircleCIHook):
    """Approve the held approval job of the release's CircleCI workflow (release.ci.workflow_id)."""

    type: Literal["circleci_approve"]
    on: list[HookEvent] = Field(["succeeded"], min_length=1)
    job_name: str | None = Field(
        None, max_length=128, description="Approve only the approval job of this name (default: any on hold)."
    )


class CircleCICancelWorkflowHook(_CircleCIHook):
    """Cancel the release's CircleCI workflow (there is no 'reject' for an approval job)."""

    type: Literal["circleci_cancel_workflow"]
    on: list[HookEvent] = Field(["failed", "aborted"], min_length=1)


PIPELINE_PARAMETERS_MAX = 100
PIPELINE_PARAMETER_KEY_MAX = 128
PIPELINE_PARAMETER_VALUE_MAX = 512


class CircleCITriggerPipelineHook(_CircleCIHook):
    """Trigger a CircleCI pipeline with parameters, e.g. {cleanup: true, version: "{source_version}"}."""

    type: Literal["circleci_trigger_pipeline"]
    branch: str | None = Field(None, max_length=256, description="Branch to run (may use {fields}).")
    tag: str | None = Field(None, max_length=256, description="Tag to run instead of a branch.")
    definition_id: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F-]{36}$",
        description="Pipeline definition id: use the newer POST /project/{provider}/{org}/{project}/pipeline/run.",
    )
    parameters: dict[str, str | bool | int] = Field(
        default_factory=dict,
        description="Pipeline parameters (declared in the project's config); strings may use {source_version} ...",
    )

    @model_validator(mode="after")
    def _coherent(self) -> CircleCITriggerPipelineHook:
        if self.branch and self.tag:
            raise ValueError("give `branch` or `tag`, not both")
        if self.definition_id and not (self.branch or self.tag):
            raise ValueError("the pipeline/run endpoint (definition_id) needs `branch` or `tag`")
        if len(self.parameters) > PIPELINE_PARAMETERS_MAX:
            raise ValueError(f"CircleCI accepts at most {PIPELINE_PARAMETERS_MAX} pipeline parameters")
        for key, value in self.parameters.items():
            if not key or len(key) > PIPELINE_PARAMETER_KEY_MAX:
                raise ValueError(f"parameter name {key[:40]!r}: 1-{PIPELINE_PARAMETER_KEY_MAX} characters")
            if isinstance(value, str) and len(value) > PIPELINE_PARAMETER_VALUE_MAX:
                raise ValueError(f"parameter {key!r}: values are at most {PIPELINE_PARAMETER_VALUE_MAX} characters")
            check_fields(value, f"parameter {key!r}")
        for what in ("branch", "tag"):
            check_fields(getattr(self, what), what)
        return self


def circleci_api_url(config: Any) -> str:
    """The API base: $CIRCLECI_API_URL, else the configuration's `circleci.api_url`."""
    return str(os.environ.get("CIRCLECI_API_URL") or config.circleci.api_url).rstrip("/")


NO_PROJECT = (
    "no CircleCI project is configured for service {service!r}: set `project_slug` on the hook, or list the "
    "project in `circleci.projects` with a deploy of the service; Sluice acts only in configured projects"
)


def allowed_projects(hook: _CircleCIHook, config: Any, release: dict[str, Any]) -> list[str]:
    """The project slugs this hook may act in for the release: the hook's own, else every
    `circleci.projects` entry with a deploy of the release's service (and application)."""
    if hook.project_slug:
        return [hook.project_slug]
    service, application = release.get("service"), release.get("application")
    return [
        p.slug
        for p in config.circleci.projects
        if any(d.service == service and d.application in (None, application) for d in p.deploys)
    ]


def _workflow_plan(action: str) -> Any:
    def plan(hook: _CircleCIHook, fields: dict[str, Any], config: Any) -> Plan:
        workflow = fields.get("ci.workflow_id") or "<no workflow id>"
        target = f"{circleci_api_url(config)}/workflow/{workflow}/{action}"
        projects = allowed_projects(hook, config, fields)
        return target, {"circleci": {"workflow_id": fields.get("ci.workflow_id"), "projects": projects}}

    return plan


def _trigger_slug(projects: list[str], announced: str) -> str:
    """The configured project to trigger: the one the announcement names if it is configured
    (several projects deploy the service), else the first configured; never an unconfigured one."""
    wanted = canonical_slug(announced) if announced else None
    return next((p for p in projects if canonical_slug(p) == wanted), projects[0] if projects else "")


def plan_trigger(hook: CircleCITriggerPipelineHook, fields: dict[str, Any], config: Any) -> Plan:
    slug = _trigger_slug(allowed_projects(hook, config, fields), str(fields.get("ci.project_slug") or ""))
    call: dict[str, Any] = {
        "project_slug": slug,
        "parameters": render_payload(hook.parameters, fields),
        "definition_id": hook.definition_id,
    }
    if hook.branch:
        call["branch"] = render_payload(hook.branch, fields)
    if hook.tag:
        call["tag"] = render_payload(hook.tag, fields)
    path = f"/project/{slug or '<no configured project>'}/pipeline" + ("/run" if hook.definition_id else "")
    return circleci_api_url(config) + path, {"circleci": call}


def _client(hook: _CircleCIHook, env: HookEnv | None) -> tuple[CircleCI, str]:
    token = required_secret(hook.token_env, "a CircleCI API token")
    base = circleci_api_url(env.config) if env is not None else os.environ.get("CIRCLECI_API_URL", "")
    return CircleCI(token, base or "https://circleci.com/api/v2", timeout=hook.timeout), token


def _workflow_id(delivery: dict[str, Any]) -> str:
    return str((delivery["payload"].get("circleci") or {}).get("workflow_id") or "")


def _projects(hook: _CircleCIHook, delivery: dict[str, Any], env: HookEnv | None) -> list[str]:
    """The configuration in force when sending decides (else what was planned with the delivery)."""
    if env is not None:
        return allowed_projects(hook, env.config, delivery["payload"].get("release") or {})
    return list((delivery["payload"].get("circleci") or {}).get("projects") or [])


def _owned(client: CircleCI, workflow_id: str, projects: list[str], service: str) -> Outcome | None:
    """None when CircleCI says the workflow belongs to a configured project; else the failure."""
    if not workflow_id:
        return failed("the release has no CircleCI workflow id (announce deploys with ci.workflow_id)")
    if not projects:
        return failed(NO_PROJECT.format(service=service))
    outcome, slug = client.workflow_project(workflow_id)
    if not outcome.ok or slug is None:
        return outcome
    if canonical_slug(slug) not in {canonical_slug(p) for p in projects}:
        return failed(
            f"workflow {workflow_id} belongs to project {slug}, not to {', '.join(projects)} (configured for "
            f"service {service!r}); the announcement named someone else's workflow: left alone",
            outcome.status,
        )
    return None


def send_approve(
    hook: CircleCIApproveHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    workflow = _workflow_id(delivery)
    service = str((delivery["payload"].get("release") or {}).get("service") or "")
    refused = _owned(client, workflow, _projects(hook, delivery, env), service)
    return refused or client.approve(workflow, hook.job_name), [token]


def send_cancel(
    hook: CircleCICancelWorkflowHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    workflow = _workflow_id(delivery)
    service = str((delivery["payload"].get("release") or {}).get("service") or "")
    refused = _owned(client, workflow, _projects(hook, delivery, env), service)
    return refused or client.cancel_workflow(workflow), [token]


def send_trigger(
    hook: CircleCITriggerPipelineHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    spec = delivery["payload"].get("circleci") or {}
    projects = _projects(hook, delivery, env)
    slug = str(spec.get("project_slug") or "")
    if not projects:
        service = str((delivery["payload"].get("release") or {}).get("service") or "")
        return failed(NO_PROJECT.format(service=service)), [token]
    if canonical_slug(slug) not in {canonical_slug(p) for p in projects}:
        slug = _trigger_slug(projects, slug)  # planned under an older configuration: the current one decides
    outcome = client.trigger_pipeline(
        slug,
        spec.get("parameters") or {},
        branch=spec.get("branch"),
        tag=spec.get("tag"),
        definition_id=spec.get("definition_id"),
    )
    return outcome, [token]


APPROVE = HookKind(
    CircleCIApproveHook,
    send_approve,
    "approve the held CircleCI approval job",
    plan=_workflow_plan("approve"),
    acts=True,
)
TRIGGER = HookKind(
    CircleCITriggerPipelineHook,
    send_trigger,
    "trigger a CircleCI pipeline with parameters",
    plan=plan_trigger,
    acts=True,
)
CANCEL = HookKind(
    CircleCICancelWorkflowHook,
    send_cancel,
    "cancel the release's CircleCI workflow",
    plan=_workflow_plan("cancel"),
    acts=True,
)
