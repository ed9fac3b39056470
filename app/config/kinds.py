"""Every configurable kind, from the registries: for `sluice kinds` and `GET /api/v1/kinds`."""

from __future__ import annotations

from integrations.registry.hooks import HOOKS
from integrations.registry.metrics import PROVIDERS
from integrations.registry.routers import ROUTERS


def all_kinds() -> dict[str, dict[str, str]]:
    """{"routers": {type: description}, "hooks": {...}, "metrics_providers": {...}}."""
    return {"routers": ROUTERS.listing(), "hooks": HOOKS.listing(), "metrics_providers": PROVIDERS.listing()}
