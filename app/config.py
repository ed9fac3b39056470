"""Sluice configuration: one YAML file, validated by pydantic, published as JSON Schema.

The models are strict (unknown keys are errors) because a typo in a release policy
must never silently fall back to a default. Secrets never live here: a hook names
the environment variable that holds its secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.names import LABEL_VALUE_RE, NAME_RE
from integrations.circleci.events import check_version_template
from integrations.prometheus.promql import TEMPLATE_VARIABLES, template_placeholders

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Accept `30s`, `2m`, `500ms`, `1h` (or a bare number of seconds) and return seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '2m' or '500ms'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration: write it like '30s', '2m', '500ms' or '1h'")


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration such as '30s', '2m', '500ms' or '1h'.",
        }
    ),
]
Name = Annotated[str, Field(pattern=NAME_RE.pattern, max_length=63)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_RE.pattern, max_length=63)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- routers --------------------------------------------------------------------------------------


class HAProxyRouter(Strict):
    """HAProxy as the router: one backend per service, one server per version (named after it)."""

    type: Literal["haproxy"]
    socket: str = Field(
        description="The runtime API: a unix socket path, or host:port of a `stats socket ... level admin`."
    )
    timeout: Duration = 2.0


class ClusterConfig(Strict):
    """Which Kubernetes cluster an application runs in: in-cluster (Sluice's own service account)
    or a kubeconfig context. With `in_cluster: true` the in-cluster configuration is tried first
    and the kubeconfig is the fallback (so the same file works on a laptop)."""

    in_cluster: bool = False
    context: str | None = Field(None, max_length=253, description="kubeconfig context (default: current).")
    kubeconfig: str | None = Field(None, description="kubeconfig path (default: $KUBECONFIG or ~/.kube/config).")
    service_label: str = Field(
        "app",
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
        description="Label naming the service on Deployments, e.g. circleci.com/component-name.",
    )
    version_label: str = Field(
        "version",
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
        description="Label naming the version on Deployments, e.g. circleci.com/version.",
    )
    watch: bool = Field(True, description="Start releases when a new version's Deployment becomes available.")
    timeout: Duration = 5.0


class _KubernetesRouter(Strict):
    # Conflicts (409) are retried this many times, re-reading and re-applying each time.
    conflict_retries: int = Field(5, ge=1, le=20)


class GatewayAPIRouter(_KubernetesRouter):
    """Gateway API: Sluice sets `spec.rules[].backendRefs[].weight` of each service's HTTPRoute."""

    type: Literal["gateway-api"]


class IngressNginxRouter(_KubernetesRouter):
    """ingress-nginx: Sluice creates a canary Ingress from the service's Ingress and sets `canary-weight`."""

    type: Literal["ingress-nginx"]


class ContourRouter(_KubernetesRouter):
    """Contour: Sluice sets `spec.routes[].services[].weight` of each service's HTTPProxy."""

    type: Literal["contour"]


RouterConfig = Annotated[
    HAProxyRouter | GatewayAPIRouter | IngressNginxRouter | ContourRouter, Field(discriminator="type")
]
KUBERNETES_ROUTERS = ("gateway-api", "ingress-nginx", "contour")


# --- services, applications -----------------------------------------------------------------------


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


class ApplicationConfig(Strict):
    name: Name
    namespace: LabelValue = "default"
    router: RouterConfig
    cluster: ClusterConfig | None = Field(
        None,
        description="The Kubernetes cluster (needed by the Kubernetes routers; enables the watcher and "
        "cluster health for any router).",
    )
    services: list[ServiceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_services(self) -> ApplicationConfig:
        _no_duplicates([s.name for s in self.services], "service")
        if self.router.type in KUBERNETES_ROUTERS and self.cluster is None:
            raise ValueError(
                f"application {self.name!r} uses the {self.router.type} router, which needs `cluster` "
                "(e.g. cluster: {in_cluster: true} or cluster: {context: prod})"
            )
        return self

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)


# --- metrics, checks, policies --------------------------------------------------------------------


class PrometheusConfig(Strict):
    url: str = "http://127.0.0.1:9090"
    timeout: Duration = 3.0
    service_label: str = Field("app", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    version_label: str = Field("version", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    namespace_label: str | None = Field(None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    requests_metric: str = Field("http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    status_label: str = Field("code", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    latency_histogram: str = Field("http_request_duration_seconds", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MetricConfig(Strict):
    """A PromQL template. Variables: {service} {version} {stable_version} {namespace} {window}."""

    query: str = Field(min_length=1, max_length=4000)
    description: str = ""

    @field_validator("query")
    @classmethod
    def _known_variables(cls, query: str) -> str:
        unknown = sorted(set(template_placeholders(query)) - set(TEMPLATE_VARIABLES))
        if unknown:
            raise ValueError(
                f"unknown template variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"use {', '.join('{' + v + '}' for v in TEMPLATE_VARIABLES)}"
            )
        return query


CheckKind = Literal["latency", "request_rate", "error_rate", "query"]


class CheckConfig(Strict):
    """One check: a measured value and the threshold it must meet at every evaluation."""

    name: Name
    type: CheckKind = Field(
        description="latency: fraction of responses faster than `under`; request_rate: requests/min; "
        "error_rate: fraction of 5xx responses; query: a metric from `metrics`."
    )
    under: Duration | None = Field(None, description="latency: the response-time bound, e.g. 500ms.")
    metric: Name | None = Field(None, description="query: the name of a metric in `metrics`.")
    min: float | None = None
    max: float | None = None
    max_over_stable: float | None = Field(
        None, description="Fail when candidate - stable exceeds this (same query, same window)."
    )

    @model_validator(mode="after")
    def _coherent(self) -> CheckConfig:
        if self.type == "latency" and self.under is None:
            raise ValueError("a latency check needs `under`, the response-time bound (e.g. under: 500ms)")
        if self.type != "latency" and self.under is not None:
            raise ValueError("`under` only applies to a latency check")
        if self.type == "query" and not self.metric:
            raise ValueError("a query check needs `metric`: the name of an entry in `metrics`")
        if self.type != "query" and self.metric:
            raise ValueError("`metric` only applies to a check of type query")
        if self.min is None and self.max is None and self.max_over_stable is None:
            raise ValueError("a check needs a threshold: min, max or max_over_stable")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class StepConfig(Strict):
    weight: int = Field(ge=0, le=100, description="Percent of traffic on the candidate during this step.")
    duration: Duration | None = Field(None, description="The step lasts at least this long.")
    requests: int | None = Field(
        None, ge=1, description="...and until the candidate has served this many requests in the step."
    )
    pause: bool = Field(False, description="Pause after this step until someone resumes or promotes.")


class PolicyConfig(Strict):
    name: Name
    interval: Duration = Field(10.0, description="How often checks are evaluated.")
    window: Duration | None = Field(None, description="PromQL range window (default: max(interval, 30s)).")
    steps: list[StepConfig] = Field(min_length=1)
    checks: list[CheckConfig] = Field(default_factory=list)
    tolerance: int = Field(
        0, ge=0, le=100, description="Consecutive failed evaluations tolerated before the release fails."
    )
    on_no_data: Literal["fail", "hold", "pass"] = Field(
        "hold",
        description="What a check with no data means: fail it, hold the step (never promote), or pass it.",
    )
    no_data_timeout: Duration | None = Field(
        None, description="With on_no_data: hold, fail the release after holding this long without data."
    )

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, v: float) -> float:
        if v < 0.5:
            raise ValueError("interval must be at least 500ms")
        return v

    @field_validator("steps")
    @classmethod
    def _steps_reach_full_traffic(cls, steps: list[StepConfig]) -> list[StepConfig]:
        if steps and steps[-1].weight != 100:
            raise ValueError(
                f"the last step has weight {steps[-1].weight}; the last step must reach 100 "
                "(all traffic on the candidate) before promotion"
            )
        return steps

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, checks: list[CheckConfig]) -> list[CheckConfig]:
        _no_duplicates([c.name for c in checks], "check")
        return checks

    @property
    def query_window(self) -> float:
        return self.window if self.window is not None else max(self.interval, 30.0)


# --- hooks ----------------------------------------------------------------------------------------

HookEvent = Literal["started", "step_passed", "succeeded", "failed", "aborted"]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class WebhookHook(Strict):
    """A signed JSON POST: `Sluice-Signature: t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`."""

    name: Name
    type: Literal["webhook"]
    on: list[HookEvent] = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    secret_env: EnvName | None = Field(None, description="Environment variable holding the signing secret.")
    services: list[LabelValue] | None = Field(None, description="Only for these services (default: all).")
    applications: list[Name] | None = None
    payload: dict[str, Any] | None = Field(
        None, description="Extra JSON fields; strings may use {service} {source_version} {target_version} ..."
    )
    timeout: Duration = 5.0
    max_attempts: int = Field(6, ge=1, le=20)


class _ActionHook(Strict):
    """What every non-webhook hook shares: when it fires, for which services, how hard it tries."""

    name: Name
    on: list[HookEvent] = Field(min_length=1)
    services: list[LabelValue] | None = Field(None, description="Only for these services (default: all).")
    applications: list[Name] | None = None
    timeout: Duration = 10.0
    max_attempts: int = Field(6, ge=1, le=20)


def hook_fields() -> list[str]:
    """The `{field}` names a hook template may use (see app.hooks.release_fields)."""
    from app.models import CIContext

    base = ["release_id", "application", "namespace", "service", "source_version", "target_version"]
    base += ["state", "policy", "step", "reason"]
    return base + [f"ci.{k}" for k in CIContext.model_fields]


_HOOK_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def _check_fields(value: Any, where: str) -> None:
    if isinstance(value, str):
        unknown = [p for p in _HOOK_PLACEHOLDER_RE.findall(value) if p not in hook_fields()]
        if unknown:
            raise ValueError(
                f"{where}: unknown field(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"use {', '.join('{' + f + '}' for f in hook_fields())}"
            )


class _CircleCIHook(_ActionHook):
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
            _check_fields(value, f"parameter {key!r}")
        for what in ("branch", "tag"):
            _check_fields(getattr(self, what), what)
        return self


class SlackHook(_ActionHook):
    """A Slack incoming webhook. Its URL is a secret: it comes from the environment (`url_env`)."""

    type: Literal["slack"]
    on: list[HookEvent] = Field(["succeeded", "failed", "aborted"], min_length=1)
    url_env: EnvName = Field("SLACK_WEBHOOK_URL", description="Environment variable holding the webhook URL.")
    public_url: str | None = Field(
        None, pattern=r"^https?://", description="Sluice's public base URL for links (default: $SLUICE_PUBLIC_URL)."
    )


class PagerDutyHook(_ActionHook):
    """PagerDuty Events v2: trigger on failure (one alert per service), resolve when a later release succeeds."""

    type: Literal["pagerduty"]
    on: list[HookEvent] = Field(["failed", "succeeded"], min_length=1)

    @field_validator("on")
    @classmethod
    def _pages_only_for_outcomes(cls, events: list[str]) -> list[str]:
        # Only these mean something to an on-call rotation: a failure pages, a later success resolves.
        wrong = [e for e in events if e not in ("failed", "aborted", "succeeded")]
        if wrong:
            raise ValueError(
                f"PagerDuty acts on failed, aborted and succeeded only; remove {', '.join(wrong)} "
                "(a page for every started release would wake someone for nothing)"
            )
        return events

    routing_key_env: EnvName = Field(
        "PAGERDUTY_ROUTING_KEY", description="Environment variable holding the integration's routing key."
    )
    api_url: str = Field("https://events.pagerduty.com", pattern=r"^https?://")
    severity: Literal["critical", "error", "warning", "info"] = "error"
    public_url: str | None = Field(
        None, pattern=r"^https?://", description="Sluice's public base URL for links (default: $SLUICE_PUBLIC_URL)."
    )


HookConfig = Annotated[
    WebhookHook
    | CircleCIApproveHook
    | CircleCITriggerPipelineHook
    | CircleCICancelWorkflowHook
    | SlackHook
    | PagerDutyHook,
    Field(discriminator="type"),
]
HOOK_TYPES = (
    "webhook",
    "circleci_approve",
    "circleci_trigger_pipeline",
    "circleci_cancel_workflow",
    "slack",
    "pagerduty",
)


# --- CI / GitOps sources: which CircleCI job or Argo app deploys which service --------------------


class CircleCIDeploy(Strict):
    """A CircleCI job (job-completed) or workflow (workflow-completed) whose success deploys a service."""

    job: str | None = Field(None, min_length=1, max_length=128, description="The deploy job's name.")
    workflow: str | None = Field(None, min_length=1, max_length=128, description="...or the workflow's name.")
    service: LabelValue
    application: Name | None = None
    version: str = Field(
        min_length=1,
        max_length=128,
        description="Version template, e.g. '1.0.{pipeline.number}' or '{pipeline.vcs.revision_short}'.",
    )

    @field_validator("version")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        return check_version_template(template)

    @model_validator(mode="after")
    def _job_or_workflow(self) -> CircleCIDeploy:
        if bool(self.job) == bool(self.workflow):
            raise ValueError("name exactly one of `job` (job-completed) or `workflow` (workflow-completed)")
        return self


class CircleCIProject(Strict):
    slug: str = Field(
        pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$",
        description="The project slug as CircleCI sends it, e.g. gh/acme/shop or circleci/<org-id>/<project-id>.",
    )
    deploys: list[CircleCIDeploy] = Field(min_length=1)


class CircleCIConfig(Strict):
    api_url: str = Field(
        "https://circleci.com/api/v2", pattern=r"^https?://", description="API v2 base (env CIRCLECI_API_URL wins)."
    )
    projects: list[CircleCIProject] = Field(default_factory=list)

    def deploy_for(self, slug: str, job: str | None, workflow: str | None) -> CircleCIDeploy | None:
        for project in self.projects:
            if project.slug.lower() != slug.lower():
                continue
            for d in project.deploys:
                if (job is not None and d.job == job) or (workflow is not None and d.workflow == workflow):
                    return d
        return None


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


# --- the whole file -------------------------------------------------------------------------------


class SluiceConfig(Strict):
    prometheus: PrometheusConfig = PrometheusConfig()
    applications: list[ApplicationConfig] = Field(min_length=1)
    policies: list[PolicyConfig] = Field(min_length=1)
    metrics: dict[Name, MetricConfig] = Field(default_factory=dict)
    hooks: list[HookConfig] = Field(default_factory=list)
    circleci: CircleCIConfig = CircleCIConfig()
    argo: ArgoConfig = ArgoConfig()

    @model_validator(mode="after")
    def _references_resolve(self) -> SluiceConfig:
        _no_duplicates([a.name for a in self.applications], "application")
        _no_duplicates([p.name for p in self.policies], "policy")
        _no_duplicates([h.name for h in self.hooks], "hook")
        policies = {p.name for p in self.policies}
        for app in self.applications:
            for svc in app.services:
                named = (
                    [svc.policy] if isinstance(svc.policy, str) else [n for n in svc.policy.model_dump().values() if n]
                )
                if not named:
                    raise ValueError(f"service {svc.name!r} in {app.name!r}: name at least one policy")
                for name in named:
                    if name not in policies:
                        raise ValueError(
                            f"service {svc.name!r} in application {app.name!r} uses policy {name!r}, "
                            f"which is not defined; defined policies: {', '.join(sorted(policies))}"
                        )
        for policy in self.policies:
            for check in policy.checks:
                if check.metric and check.metric not in self.metrics:
                    raise ValueError(
                        f"check {check.name!r} in policy {policy.name!r} uses metric {check.metric!r}, "
                        f"which is not in `metrics`"
                    )
        return self

    @model_validator(mode="after")
    def _sources_resolve(self) -> SluiceConfig:
        """CircleCI deploy jobs and Argo apps must name a service (and application) that exist."""
        mapped: list[tuple[str, CircleCIDeploy | ArgoMapping]] = [
            (f"circleci project {p.slug!r}", d) for p in self.circleci.projects for d in p.deploys
        ]
        mapped += [(f"argo application {m.name!r}", m) for m in self.argo.applications]
        mapped += [(f"argo rollout {m.name!r}", m) for m in self.argo.rollouts]
        for where, m in mapped:
            apps = self.find_service(m.service, m.application)
            if not apps:
                raise ValueError(f"{where} deploys service {m.service!r}, which is not in `applications`")
            if len(apps) > 1:
                raise ValueError(
                    f"{where}: service {m.service!r} is in several applications; name one in `application`"
                )
        return self

    def application(self, name: str) -> ApplicationConfig | None:
        return next((a for a in self.applications if a.name == name), None)

    def policy(self, name: str) -> PolicyConfig:
        return next(p for p in self.policies if p.name == name)

    def find_service(self, service: str, application: str | None = None) -> list[ApplicationConfig]:
        """Applications that hold a service of this name (optionally only the named application)."""
        return [a for a in self.applications if (application is None or a.name == application) and a.service(service)]


def _no_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"two {what}s are named {n!r}; names must be unique")
        seen.add(n)


# --- loading, with errors that name the file, the path and the fix ---------------------------------


class ConfigError(Exception):
    """A configuration file that cannot be used; `problems` lists (location, message) pairs."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path}: {where}: {msg}" for where, msg in self.problems]
        return "\n".join(lines)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _ in node.value:
        lines[str(loader.construct_object(key_node))] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2 booleans only: in YAML 1.1 `on:`, `yes` and `no` are booleans, which would turn a
# hook's `on: [failed]` into `True: [failed]` (and the country code NO into False).
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_lines(v) for k, v in data.items() if k not in ("__lines__", "__line__")}
    if isinstance(data, list):
        return [_strip_lines(v) for v in data]
    return data


def _line_of(data: Any, loc: tuple) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(str(part), node.get("__line__", line))
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return line


_HINTS = {
    "extra_forbidden": "remove this key (or check its spelling): it is not a Sluice setting",
    "missing": "add this required key",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' (Kubernetes label syntax)",
}


def format_validation_error(error: ValidationError, data: Any) -> list[tuple[str, str]]:
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("haproxy", *HOOK_TYPES)))
        path = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(data, loc)
        where = f"line {line}: {path}" if line else path
        msg = err["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(err["type"])
        if err["type"] == "string_pattern_mismatch" and "A-Z_" in str(err.get("ctx", {}).get("pattern", "")):
            hint = "use the NAME of an environment variable, in capitals (e.g. SLUICE_WEBHOOK_SECRET)"
        problems.append((where, f"{msg}" + (f" — {hint}" if hint else "")))
    return problems


def parse_config(text: str, path: str = "<config>") -> SluiceConfig:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(path, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, [("(top level)", "expected a mapping with `applications` and `policies`")])
    try:
        return SluiceConfig.model_validate(_strip_lines(raw))
    except ValidationError as exc:
        raise ConfigError(path, format_validation_error(exc, raw)) from None


def load_config(path: str | Path) -> SluiceConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [("(file)", f"cannot read it: {exc.strerror}; set SLUICE_CONFIG")]) from None
    return parse_config(text, str(p))


def json_schema() -> str:
    schema = SluiceConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Sluice configuration"
    return json.dumps(schema, indent=2)
