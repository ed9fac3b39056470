"""HAProxy as Sluice's router: one backend per service, one server per version, named after it.

Sluice's percents (0..100, summing to 100) are written directly as HAProxy weights (0..256),
so what `get weight` shows is what Sluice asked for. Changes are checked before any write
(no half-applied split when a version has no server) and read back after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.haproxy.runtime import RuntimeClient, check_name, no_server
from integrations.routing import Health, RouterError

if TYPE_CHECKING:
    from app.config import HAProxyRouter as HAProxyRouterConfig
    from app.config import ServiceConfig


class HAProxyRouter:
    def __init__(self, config: HAProxyRouterConfig):
        self.config = config
        self.runtime = RuntimeClient(config.socket, timeout=config.timeout)

    @staticmethod
    def backend(service: ServiceConfig) -> str:
        return check_name(service.backend or service.name, "backend")

    def get_weights(self, service: ServiceConfig) -> dict[str, int]:
        servers = self.runtime.servers(self.backend(service))
        return to_percents({name: info["weight"] for name, info in servers.items()})

    def set_weights(self, service: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        backend = self.backend(service)
        _check_percents(weights)
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

    def health(self, service: ServiceConfig, version: str) -> Health:
        backend = self.backend(service)
        check_name(version, "server")
        servers = self.runtime.servers(backend)
        if version not in servers:
            raise no_server(backend, version)
        status = servers[version]["status"]
        return Health(healthy=status_health(status), detail=f"HAProxy {backend}/{version}: {status}")


def status_health(status: str) -> bool | None:
    """UP (also "UP 1/3", going down) can take traffic; DOWN, MAINT, NOLB and DRAIN cannot;
    "no check" means HAProxy does not check the server, so it cannot tell."""
    if status.startswith("UP"):
        return True
    if status.startswith(("DOWN", "MAINT", "NOLB", "DRAIN")):
        return False
    return None


def to_percents(weights: dict[str, int]) -> dict[str, int]:
    """HAProxy weights -> percents summing to 100 (largest remainder); all 0 when every weight is 0."""
    total = sum(weights.values())
    if total <= 0:
        return {name: 0 for name in weights}
    exact = {name: w * 100 / total for name, w in weights.items()}
    result = {name: int(v) for name, v in exact.items()}
    by_remainder = sorted(weights, key=lambda n: (exact[n] - result[n], weights[n]), reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return result


def _check_percents(weights: dict[str, int]) -> None:
    bad = {v: w for v, w in weights.items() if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100}
    if bad:
        raise RouterError(f"weights must be integer percents 0..100, got {bad}", retryable=False)
    if sum(weights.values()) != 100:
        raise RouterError(f"weights must sum to 100, got {sum(weights.values())}: {weights}", retryable=False)
