"""Every configurable kind, from the registries: for `sluice kinds` and `GET /api/v1/kinds`."""

from __future__ import annotations

from app.core.config.shapes import SHAPES
from integrations.registry.hooks import HOOKS
from integrations.registry.metrics import PROVIDERS
from integrations.registry.routers import ROUTERS


def all_kinds() -> dict[str, dict[str, str]]:
    """{"routers": {type: description}, "hooks": {...}, "metrics_providers": {...}}."""
    routers = {
        name: f"{description} (shapes: {', '.join(s for s in SHAPES if s in ROUTERS[name].shapes)})"
        for name, description in ROUTERS.listing().items()
    }
    return {"routers": routers, "hooks": HOOKS.listing(), "metrics_providers": PROVIDERS.listing()}
