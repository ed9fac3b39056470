"""The whole configuration file, assembled from the shared parts and the registries.

The router, hook and metrics-provider sections are tagged unions of the models that the
integrations own, built from integrations/registry/routers.py, integrations/registry/hooks.py
and integrations/registry/metrics.py: registering a kind there makes it configurable here,
in the JSON Schema and in `sluice kinds`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from app.config_file.support import shape_problems
from app.core.config.base import LabelValue, Name, Strict, no_duplicates
from app.core.config.fleets import FleetConfig, resolve_waves
from app.core.config.jobs import JobsConfig
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from integrations.argo.config import ArgoConfig, ArgoMapping
from integrations.circleci.config import CircleCIConfig, CircleCIDeploy
from integrations.kubernetes.config import ClusterConfig
from integrations.notify.interface import HookBase
from integrations.notify.slack_interactive import SlackConfig
from integrations.prometheus.config import MetricConfig, PrometheusConfig
from integrations.registry.hooks import HOOKS
from integrations.registry.metrics import PROVIDERS
from integrations.registry.routers import ROUTERS

if TYPE_CHECKING:
    RouterConfig = Any
    HookConfig = HookBase
    MetricsProviderConfig = Any
else:
    RouterConfig = ROUTERS.union()
    HookConfig = HOOKS.union()
    MetricsProviderConfig = PROVIDERS.union()

KUBERNETES_ROUTERS = tuple(name for name in ROUTERS if ROUTERS[name].needs_cluster)
HOOK_TYPES = tuple(HOOKS)


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
        no_duplicates([s.name for s in self.services], "service")
        if ROUTERS[self.router.type].needs_cluster and self.cluster is None:
            raise ValueError(
                f"application {self.name!r} uses the {self.router.type} router, which needs `cluster` "
                "(e.g. cluster: {in_cluster: true} or cluster: {context: prod})"
            )
        scaled = [s.name for s in self.services if s.scale is not None]
        if scaled and not ROUTERS[self.router.type].needs_cluster:
            raise ValueError(
                f"application {self.name!r}: `scale` (on {', '.join(scaled)}) sizes Kubernetes Deployments and "
                f"needs a Kubernetes router ({', '.join(KUBERNETES_ROUTERS)}), not {self.router.type}; remove it"
            )
        return self

    @cached_property
    def services_by_name(self) -> tuple[list[ServiceConfig], dict[str, ServiceConfig]]:
        """The services by name (unique: `_unique_services`), with the list they index."""
        return self.services, {s.name: s for s in self.services}

    def service(self, name: str) -> ServiceConfig | None:
        # By name, not a scan: a tick looks its service up several times, and with 10,000 services
        # a scan was ~2 ms each (benchmarks/RESULTS.md, Tick CPU). A copy of the model made with
        # other services carries the old index along: then it is not used.
        indexed, by_name = self.services_by_name
        if indexed is not self.services:
            return next((s for s in self.services if s.name == name), None)
        return by_name.get(name)


class SluiceConfig(Strict):
    prometheus: PrometheusConfig = Field(
        PrometheusConfig(), description="Prometheus, the default metrics provider (or give `metrics_provider`)."
    )
    metrics_provider: MetricsProviderConfig | None = Field(
        None, description="Where check values come from, e.g. {type: prometheus, url: http://prometheus:9090}."
    )
    applications: list[ApplicationConfig] = Field(min_length=1)
    policies: list[PolicyConfig] = Field(min_length=1)
    metrics: dict[Name, MetricConfig] = Field(default_factory=dict)
    hooks: list[HookConfig] = Field(default_factory=list)
    circleci: CircleCIConfig = CircleCIConfig()
    argo: ArgoConfig = ArgoConfig()
    slack: SlackConfig = Field(SlackConfig(), description="Slack interactivity: who may approve or abort from Slack.")
    jobs: JobsConfig = Field(JobsConfig(), description="Replay and backtest jobs on the API: result TTL, dedup window.")
    fleets: list[FleetConfig] = Field(
        default_factory=list,
        description="A service released over several applications in waves, from one announcement (docs/fleets.md).",
    )

    @property
    def metrics_source(self) -> Any:
        """The metrics provider's configuration: `metrics_provider`, else `prometheus`."""
        return self.metrics_provider if self.metrics_provider is not None else self.prometheus

    @model_validator(mode="after")
    def _one_metrics_provider(self) -> SluiceConfig:
        if self.metrics_provider is not None and "prometheus" in self.model_fields_set:
            raise ValueError("give `metrics_provider` or `prometheus`, not both (they configure the same thing)")
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> SluiceConfig:
        no_duplicates([a.name for a in self.applications], "application")
        no_duplicates([p.name for p in self.policies], "policy")
        no_duplicates([h.name for h in self.hooks], "hook")
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
        self._routers_can_run_policies()
        for policy in self.policies:
            for check in policy.checks:
                if check.metric and check.metric not in self.metrics:
                    raise ValueError(
                        f"check {check.name!r} in policy {policy.name!r} uses metric {check.metric!r}, "
                        f"which is not in `metrics`"
                    )
        return self

    def _routers_can_run_policies(self) -> None:
        """Every step of every policy a service may use is a shape its router can do."""
        by_name = {p.name: p for p in self.policies}
        problems: list[str] = []
        for app in self.applications:
            for svc in app.services:
                named = [svc.policy] if isinstance(svc.policy, str) else list(svc.policy.model_dump().values())
                for name in dict.fromkeys(n for n in named if n):
                    problems += [
                        f"service {svc.name!r} in application {app.name!r}: {p}"
                        for p in shape_problems(app.router, svc, by_name[name])
                    ]
        if problems:
            raise ValueError("\n    ".join(problems))

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
            fleet = m.application is None and any(f.service == m.service for f in self.fleets)
            if len(apps) > 1 and not fleet:  # a fleet's service: the announcement starts the fleet
                raise ValueError(
                    f"{where}: service {m.service!r} is in several applications; name one in `application` "
                    "(or release it over all of them with a fleet: docs/fleets.md)"
                )
        return self

    @model_validator(mode="after")
    def _fleets_resolve(self) -> SluiceConfig:
        """Each fleet's waves name applications that hold its service, each in one wave; one fleet a service."""
        no_duplicates([f.name for f in self.fleets], "fleet")
        services = [f.service for f in self.fleets]
        twice = sorted({s for s in services if services.count(s) > 1})
        if twice:
            raise ValueError(f"two fleets release service {twice[0]!r}; an announcement starts one: merge them")
        for fleet in self.fleets:
            resolve_waves(fleet, [a.name for a in self.find_service(fleet.service)])
        return self

    def application(self, name: str) -> ApplicationConfig | None:
        return next((a for a in self.applications if a.name == name), None)

    def policy(self, name: str) -> PolicyConfig:
        return next(p for p in self.policies if p.name == name)

    def find_service(self, service: str, application: str | None = None) -> list[ApplicationConfig]:
        """Applications that hold a service of this name (optionally only the named application)."""
        return [a for a in self.applications if (application is None or a.name == application) and a.service(service)]
