"""The router interface: how Sluice splits a service's traffic between versions.

One small protocol, one module per router, one factory. Adding a router touches one
new module and one line in `router_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.config import ApplicationConfig, ServiceConfig


class RouterError(Exception):
    """The router could not be read or changed. `retryable` is False when retrying cannot help
    (e.g. the version has no server/backend), so the release fails with this message instead."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Health:
    """Is the candidate able to take traffic? `healthy` None means the router cannot tell."""

    healthy: bool | None
    detail: str = ""


class Router(Protocol):
    def get_weights(self, service: ServiceConfig) -> dict[str, int]:
        """Current percent of traffic per version (versions the router knows, summing to 100)."""
        ...

    def set_weights(self, service: ServiceConfig, weights: dict[str, int]) -> dict[str, int]:
        """Set percent per version (sums to 100; versions the router knows but not listed get 0),
        then read the weights back and raise RouterError unless they match. Idempotent."""
        ...

    def health(self, service: ServiceConfig, version: str) -> Health:
        """Whether the version's instances are up, as the router sees them."""
        ...


def router_for(application: ApplicationConfig) -> Router:
    router = application.router
    if router.type == "haproxy":
        from integrations.haproxy.router import HAProxyRouter

        return HAProxyRouter(router)
    if router.type in ("gateway-api", "ingress-nginx", "contour"):
        from integrations.kubernetes.routers import kubernetes_router

        return kubernetes_router(application)
    raise RouterError(f"unknown router type {router.type!r}", retryable=False)
