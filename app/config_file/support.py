"""Which router can do which release shape: the check behind `sluice validate` and the support
matrix in docs/shapes.md (both read the router registry, so they cannot disagree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.config.shapes import SHAPES
from integrations.registry.routers import ROUTERS

if TYPE_CHECKING:
    from app.core.config.policy import PolicyConfig
    from app.core.config.services import ServiceConfig

# How a refusal names what the step wanted done.
_DOING = {"weights": "split traffic by weight", "segment": "route a segment", "mirror": "mirror traffic"}


def routers_that_can(shape: str) -> list[str]:
    return [name for name in ROUTERS if shape in ROUTERS[name].shapes]


def shape_problems(router: object, service: ServiceConfig, policy: PolicyConfig) -> list[str]:
    """Why this router cannot run this policy's steps for this service (empty: it can)."""
    kind = ROUTERS[router.type]  # type: ignore[attr-defined]
    problems = []
    for number, step in enumerate(policy.steps, start=1):
        for shape in step.shapes:
            if shape not in kind.shapes:
                why = kind.cannot.get(shape)
                problems.append(
                    f"router {kind.name} cannot {_DOING[shape]} (policy {policy.name!r}, step {number}: {shape})"
                    + (f": {why}" if why else "")
                    + f"; routers that can: {', '.join(routers_that_can(shape)) or 'none'}"
                )
            elif kind.check_step is not None:
                problem = kind.check_step(router, service, step)
                if problem:
                    problems.append(f"router {kind.name}, policy {policy.name!r}, step {number}: {problem}")
    return problems


def support_matrix() -> str:
    """The router x shape table, as Markdown (docs/shapes.md holds a copy; a test compares)."""
    lines = ["| router | " + " | ".join(SHAPES) + " |", "|---|" + "---|" * len(SHAPES)]
    for name in ROUTERS:
        kind = ROUTERS[name]
        cells = [
            "yes" if shape in kind.shapes else "no: " + kind.cannot.get(shape, "not supported") for shape in SHAPES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
