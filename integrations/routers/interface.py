"""The router interface: how Sluice splits a service's traffic between versions.

One small protocol, its error, and the helpers every router shares. The implementations
(integrations/haproxy/router.py, integrations/kubernetes/gateway_api.py, ...) import this module;
integrations/registry/routers.py maps each `router.type` to its model and factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from integrations.kinds import Kind

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig


class RouterError(Exception):
    """The router could not be read or changed. `retryable` is False when retrying cannot help
    (e.g. the version has no server/backend), so the release fails with this message instead."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class VersionHealth:
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

    def health(self, service: ServiceConfig, version: str) -> VersionHealth:
        """Whether the version's instances are up, as the router sees them."""
        ...


class SegmentRouter(Protocol):
    """A router that can do segment steps (its kind declares "segment")."""

    def set_segment(self, service: ServiceConfig, version: str, segment: SegmentConfig | None) -> None:
        """Send the requests of `segment` to `version` whatever the weights; None removes any
        segment of this service. Idempotent; read back (RouterError when it did not hold)."""
        ...


class MirrorRouter(Protocol):
    """A router that can do mirror steps (its kind declares "mirror")."""

    def set_mirror(self, service: ServiceConfig, version: str, mirror: MirrorConfig | None) -> None:
        """Copy `mirror.percent` of the service's requests to `version` (answers dropped); None
        removes it. Idempotent; read back."""
        ...


class Placement(Protocol):
    """What a router's factory reads of its application (app.config_file.schema.ApplicationConfig)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def router(self) -> Any: ...
    @property
    def cluster(self) -> Any: ...


Permission = tuple[str, str, str]  # (API group, resource, verb)


@dataclass(frozen=True)
class RouterKind(Kind):
    """A router kind. `factory(application) -> Router`. A Kubernetes router needs the application's
    `cluster` and declares the API calls it makes (they become RBAC rows in deploy/)."""

    needs_cluster: bool = False
    permissions: frozenset[Permission] = frozenset()
    # The release shapes it can do (app/core/config/shapes.py): "weights" always; "segment" needs
    # `set_segment`, "mirror" needs `set_mirror`. `sluice validate` refuses a policy that needs
    # another; `cannot` says why for the ones left out (shown in that refusal and in the docs).
    shapes: frozenset[str] = frozenset({"weights"})
    cannot: dict[str, str] = field(default_factory=dict)
    # check_step(router_config, service, step) -> what this router needs for the step that the
    # configuration lacks (e.g. HAProxy's map for a header), or None.
    check_step: Callable[[Any, ServiceConfig, Any], str | None] | None = None


def to_percents(weights: dict[str, int]) -> dict[str, int]:
    """Weights -> percents summing to 100 (largest remainder); all 0 when every weight is 0."""
    total = sum(weights.values())
    if total <= 0:
        return {name: 0 for name in weights}
    exact = {name: w * 100 / total for name, w in weights.items()}
    result = {name: int(v) for name, v in exact.items()}
    by_remainder = sorted(weights, key=lambda n: (exact[n] - result[n], weights[n]), reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return result


def check_percents(weights: dict[str, int]) -> None:
    """Refuse anything but integer percents 0..100 summing to 100 (not retryable)."""
    bad = {v: w for v, w in weights.items() if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100}
    if bad:
        raise RouterError(f"weights must be integer percents 0..100, got {bad}", retryable=False)
    if sum(weights.values()) != 100:
        raise RouterError(f"weights must sum to 100, got {sum(weights.values())}: {weights}", retryable=False)
