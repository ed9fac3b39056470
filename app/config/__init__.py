"""Sluice configuration: one YAML file, validated by pydantic, published as JSON Schema.

The models are strict (unknown keys are errors) because a typo in a release policy
must never silently fall back to a default. Secrets never live here: a hook names
the environment variable that holds its secret.

Layout: base.py (durations, names, the strict base), services.py, policy.py, schema.py (the
whole file, assembled from the registries of routers, hook kinds and metric providers),
loader.py (YAML, error messages, JSON Schema). Each integration owns its own models; they are
re-exported here so that `from app.config import X` keeps working.
"""

from __future__ import annotations

from app.config.base import (
    Duration,
    EnvName,
    LabelValue,
    Name,
    Strict,
    format_duration,
    no_duplicates,
    parse_duration,
)
from app.config.loader import ConfigError, format_validation_error, json_schema, load_config, parse_config
from app.config.policy import CheckConfig, CheckKind, PolicyConfig, StepConfig
from app.config.schema import (
    HOOK_TYPES,
    KUBERNETES_ROUTERS,
    ApplicationConfig,
    HookConfig,
    MetricsProviderConfig,
    RouterConfig,
    SluiceConfig,
)
from app.config.services import BumpPolicies, ServiceConfig
from integrations.argo.config import ArgoConfig, ArgoMapping
from integrations.circleci.config import CircleCIConfig, CircleCIDeploy, CircleCIProject
from integrations.circleci.hooks import (
    PIPELINE_PARAMETER_KEY_MAX,
    PIPELINE_PARAMETER_VALUE_MAX,
    PIPELINE_PARAMETERS_MAX,
    CircleCIApproveHook,
    CircleCICancelWorkflowHook,
    CircleCITriggerPipelineHook,
)
from integrations.haproxy.router import HAProxyRouterConfig as HAProxyRouter
from integrations.kubernetes.config import ClusterConfig
from integrations.kubernetes.config import ContourRouterConfig as ContourRouter
from integrations.kubernetes.config import GatewayAPIRouterConfig as GatewayAPIRouter
from integrations.kubernetes.config import IngressNginxRouterConfig as IngressNginxRouter
from integrations.notify.interface import HookEvent, hook_fields
from integrations.notify.pagerduty import PagerDutyHook
from integrations.notify.slack import SlackHook
from integrations.notify.webhook import WebhookHook
from integrations.prometheus.config import MetricConfig, PrometheusConfig

__all__ = [
    "HOOK_TYPES",
    "KUBERNETES_ROUTERS",
    "PIPELINE_PARAMETERS_MAX",
    "PIPELINE_PARAMETER_KEY_MAX",
    "PIPELINE_PARAMETER_VALUE_MAX",
    "ApplicationConfig",
    "ArgoConfig",
    "ArgoMapping",
    "BumpPolicies",
    "CheckConfig",
    "CheckKind",
    "CircleCIApproveHook",
    "CircleCICancelWorkflowHook",
    "CircleCIConfig",
    "CircleCIDeploy",
    "CircleCIProject",
    "CircleCITriggerPipelineHook",
    "ClusterConfig",
    "ConfigError",
    "ContourRouter",
    "Duration",
    "EnvName",
    "GatewayAPIRouter",
    "HAProxyRouter",
    "HookConfig",
    "HookEvent",
    "IngressNginxRouter",
    "LabelValue",
    "MetricConfig",
    "MetricsProviderConfig",
    "Name",
    "PagerDutyHook",
    "PolicyConfig",
    "PrometheusConfig",
    "RouterConfig",
    "ServiceConfig",
    "SlackHook",
    "SluiceConfig",
    "StepConfig",
    "Strict",
    "WebhookHook",
    "format_duration",
    "format_validation_error",
    "hook_fields",
    "json_schema",
    "load_config",
    "no_duplicates",
    "parse_config",
    "parse_duration",
]
