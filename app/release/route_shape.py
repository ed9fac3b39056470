"""A release's route beyond its weights: the current step's segment or mirror.

The engine applies it with the weights (app/release/engine.py `apply_weights`) and treats a change of it
like a change of weights: a step that starts or ends a segment or mirror leaves the release
`weights_applied=False` until the router confirms. A finished release has neither: promotion and
rollback remove them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from app.core.config.policy import PolicyConfig
    from app.core.config.services import ServiceConfig
    from app.core.config.shapes import MirrorConfig, SegmentConfig
    from app.core.models import Release


def route_shape(policy: PolicyConfig | None, release: Release) -> tuple[SegmentConfig | None, MirrorConfig | None]:
    """The segment and mirror the router should show for the release now."""
    if policy is None or release.terminal or release.state == "pending" or release.step >= len(policy.steps):
        return None, None
    step = policy.steps[release.step]
    return step.segment, step.mirror


def apply_shape(router: Any, service: ServiceConfig, policy: PolicyConfig | None, release: Release) -> None:
    """Make the router show the release's segment and mirror (or none). A router that cannot do
    one is asked only to remove what is not there, which it need not support."""
    segment, mirror = route_shape(policy, release)
    version = release.target_version
    set_segment = getattr(router, "set_segment", None)
    set_mirror = getattr(router, "set_mirror", None)
    if segment is not None and set_segment is None:
        raise RouterError("this router cannot route a segment (sluice validate names the ones that can)", False)
    if mirror is not None and set_mirror is None:
        raise RouterError("this router cannot mirror traffic (sluice validate names the ones that can)", False)
    # Only a policy that has such steps can have left one on the router (or a policy that left
    # the configuration: clean up in case); others cost no extra router calls.
    steps = policy.steps if policy is not None else None
    if set_segment is not None and (steps is None or any(s.segment for s in steps)):
        set_segment(service, version, segment)
    if set_mirror is not None and (steps is None or any(s.mirror for s in steps)):
        set_mirror(service, version, mirror)


def describe_shape(policy: PolicyConfig | None, release: Release) -> str:
    segment, mirror = route_shape(policy, release)
    if segment is not None:
        return f"; segment {segment.describe()} -> {release.target_version}"
    if mirror is not None:
        return f"; mirroring {mirror.percent}% of requests to {release.target_version}"
    return ""
