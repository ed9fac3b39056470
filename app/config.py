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


RouterConfig = Annotated[HAProxyRouter, Field(discriminator="type")]


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


class ApplicationConfig(Strict):
    name: Name
    namespace: LabelValue = "default"
    router: RouterConfig
    services: list[ServiceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_services(self) -> ApplicationConfig:
        _no_duplicates([s.name for s in self.services], "service")
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


HookConfig = Annotated[WebhookHook, Field(discriminator="type")]


# --- the whole file -------------------------------------------------------------------------------


class SluiceConfig(Strict):
    prometheus: PrometheusConfig = PrometheusConfig()
    applications: list[ApplicationConfig] = Field(min_length=1)
    policies: list[PolicyConfig] = Field(min_length=1)
    metrics: dict[Name, MetricConfig] = Field(default_factory=dict)
    hooks: list[HookConfig] = Field(default_factory=list)

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
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("haproxy", "webhook")))
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
