"""The CircleCI hook kinds: approve the held approval job, cancel the workflow, trigger a pipeline.

Each plans its call when the event happens (the workflow id, the rendered parameters) and sends
it with the CircleCI API client (integrations/circleci/api.py).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, model_validator

from app.core.config.base import EnvName
from integrations.circleci.api import CircleCI
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


class _CircleCIHook(HookBase):
    token_env: EnvName = Field("CIRCLECI_TOKEN", description="Environment variable holding a CircleCI API token.")


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
    project_slug: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$",
        description="e.g. gh/acme/shop (default: the project that deployed the release, release.ci.project_slug).",
    )
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


def _workflow_plan(action: str) -> Any:
    def plan(hook: _CircleCIHook, fields: dict[str, Any], config: Any) -> Plan:
        workflow = fields.get("ci.workflow_id") or "<no workflow id>"
        target = f"{circleci_api_url(config)}/workflow/{workflow}/{action}"
        return target, {"circleci": {"workflow_id": fields.get("ci.workflow_id")}}

    return plan


def plan_trigger(hook: CircleCITriggerPipelineHook, fields: dict[str, Any], config: Any) -> Plan:
    slug = hook.project_slug or fields.get("ci.project_slug") or ""
    call: dict[str, Any] = {
        "project_slug": slug,
        "parameters": render_payload(hook.parameters, fields),
        "definition_id": hook.definition_id,
    }
    if hook.branch:
        call["branch"] = render_payload(hook.branch, fields)
    if hook.tag:
        call["tag"] = render_payload(hook.tag, fields)
    path = f"/project/{slug or '<no project slug>'}/pipeline" + ("/run" if hook.definition_id else "")
    return circleci_api_url(config) + path, {"circleci": call}


def _client(hook: _CircleCIHook, env: HookEnv | None) -> tuple[CircleCI, str]:
    token = required_secret(hook.token_env, "a CircleCI API token")
    base = circleci_api_url(env.config) if env is not None else os.environ.get("CIRCLECI_API_URL", "")
    return CircleCI(token, base or "https://circleci.com/api/v2", timeout=hook.timeout), token


def _workflow_id(delivery: dict[str, Any]) -> str:
    return str((delivery["payload"].get("circleci") or {}).get("workflow_id") or "")


def send_approve(
    hook: CircleCIApproveHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    return client.approve(_workflow_id(delivery), hook.job_name), [token]


def send_cancel(
    hook: CircleCICancelWorkflowHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    return client.cancel_workflow(_workflow_id(delivery)), [token]


def send_trigger(
    hook: CircleCITriggerPipelineHook, delivery: dict[str, Any], env: HookEnv | None = None
) -> tuple[Outcome, list[str]]:
    client, token = _client(hook, env)
    spec = delivery["payload"].get("circleci") or {}
    outcome = client.trigger_pipeline(
        spec.get("project_slug") or "",
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
