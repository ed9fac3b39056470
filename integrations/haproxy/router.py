"""HAProxy as Sluice's router: one backend per service, one server per version, named after it.

Sluice's percents (0..100, summing to 100) are written directly as HAProxy weights (0..256),
so what `get weight` shows is what Sluice asked for. Changes are checked before any write
(no half-applied split when a version has no server) and read back after.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from app.core.config.base import Duration, Strict
from app.core.models import RouterCounts
from integrations.haproxy.runtime import RuntimeClient, check_name, no_server
from integrations.haproxy.segments import HAProxySegments, SegmentMap, check_step
from integrations.haproxy.stats import BackendStats, ProcessInfo, ServerStats, backend_delta, read_backend_stats
from integrations.routers.interface import RouterError, RouterKind, VersionHealth, check_percents, to_percents

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import SegmentConfig


class HAProxyRouterConfig(Strict):
    """HAProxy as the router: one backend per service, one server per version (named after it)."""

    type: Literal["haproxy"]
    socket: str = Field(
        description="The runtime API: a unix socket path, or host:port of a `stats socket ... level admin`."
    )
    timeout: Duration = 2.0
    segment_maps: list[SegmentMap] = Field(
        default_factory=list,
        description="For segment steps: the maps haproxy.cfg's `use-server` rules read, per backend and "
        "header or cookie (docs/shapes.md).",
    )


class HAProxyRouter:
    def __init__(self, config: HAProxyRouterConfig):
        self.config = config
        self.runtime = RuntimeClient(config.socket, timeout=config.timeout)
        self.segments = HAProxySegments(self.runtime, config.segment_maps)

    @staticmethod
    def backend(service: ServiceConfig) -> str:
        return check_name(service.backend or service.name, "backend")

    def get_weights(self, service: ServiceConfig) -> dict[str, int]:
        servers = self.runtime.servers(self.backend(service))
        return to_percents({name: info["weight"] for name, info in servers.items()})

    def set_weights(self, service: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        backend = self.backend(service)
        check_percents(weights)
        current = {name: info["weight"] for name, info in self.runtime.servers(backend).items()}
        for version, weight in weights.items():
            check_name(version, "server")
            # A version at 0 with no server already gets no traffic; refusing it would block a
            # rollback to stable after the candidate's server was removed.
            if version not in current and weight > 0:
                raise no_server(backend, version)
        target = {name: weights.get(name, 0) for name in current}
        # Raise before lowering, so the backend never passes through "every weight 0" (HAProxy
        # answers 503 then) while traffic moves from one version to another.
        raises = [n for n in target if target[n] > current[n]]
        lowers = [n for n in target if target[n] < current[n]]
        for name in raises + lowers:
            self.runtime.set_weight(backend, name, target[name])
        actual = {name: info["weight"] for name, info in self.runtime.servers(backend).items()}
        if actual != target:
            raise RouterError(
                f"HAProxy backend {backend!r} did not keep the weights Sluice set: wanted {target}, "
                f"read back {actual}; is another tool (or a reload) changing weights?",
                retryable=True,
            )
        return dict(target)

    def set_segment(self, service: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        self.segments.set_segment(service, version, segment)

    def health(self, service: ServiceConfig, version: str) -> VersionHealth:
        backend = self.backend(service)
        check_name(version, "server")
        servers = self.runtime.servers(backend)
        if version not in servers:
            raise no_server(backend, version)
        status = servers[version]["status"]
        return VersionHealth(healthy=status_health(status), detail=f"HAProxy {backend}/{version}: {status}")

    # --- the router's own view of each version (app/core/judge/judging.py) ---------------------------------

    def counters(self, service: ServiceConfig) -> dict[str, Any]:
        """Every server's counters now, as JSON (stored on the release when a step's weights are
        confirmed: the mark its evidence counts from)."""
        snapshot = read_backend_stats(self.runtime, self.backend(service), with_process=True)
        return {
            "backend": snapshot.backend,
            "taken_at": snapshot.taken_at,
            "process": asdict(snapshot.process) if snapshot.process else None,
            "servers": {name: asdict(stats) for name, stats in snapshot.servers.items()},
        }

    def counts_since(self, service: ServiceConfig, mark: dict[str, Any]) -> dict[str, RouterCounts]:
        """What each version's server saw since `mark`: responses by class, HAProxy's own error
        answers (refused connections, timeouts), health-check downs, and whether HAProxy reset."""
        before = BackendStats(
            backend=mark["backend"],
            servers={name: ServerStats(**fields) for name, fields in mark["servers"].items()},
            taken_at=mark["taken_at"],
            process=ProcessInfo(**mark["process"]) if mark.get("process") else None,
        )
        now = read_backend_stats(self.runtime, self.backend(service), with_process=True)
        return {
            name: RouterCounts(
                requests=delta.requests,
                by_class={
                    "2xx": delta.http_2xx,
                    "3xx": delta.http_3xx,
                    "4xx": delta.http_4xx,
                    "5xx": delta.http_5xx,
                },
                proxy_errors=delta.proxy_errors,
                down_transitions=delta.down_transitions,
                failed_checks=delta.failed_checks,
                currently_down=delta.currently_down,
                reset=delta.reset,
                source="HAProxy",
            )
            for name, delta in backend_delta(before, now).items()
        }


def status_health(status: str) -> bool | None:
    """UP (also "UP 1/3", going down) can take traffic; DOWN, MAINT, NOLB and DRAIN cannot;
    "no check" means HAProxy does not check the server, so it cannot tell."""
    if status.startswith("UP"):
        return True
    if status.startswith(("DOWN", "MAINT", "NOLB", "DRAIN")):
        return False
    return None


KIND = RouterKind(
    config=HAProxyRouterConfig,
    factory=lambda application: HAProxyRouter(application.router),
    description="HAProxy server weights over its runtime API (off Kubernetes)",
    shapes=frozenset({"weights", "segment"}),
    cannot={
        "mirror": "HAProxy copies requests only through an SPOE agent (e.g. spoa-mirror), which Sluice does not drive"
    },
    check_step=check_step,
)
