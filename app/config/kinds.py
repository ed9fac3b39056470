"""Every configurable kind, from the registries: for `sluice kinds` and `GET /api/v1/kinds`."""

from __future__ import annotations

from integrations.metrics.registry import PROVIDERS
from integrations.notify.registry import HOOKS
from integrations.routers.registry import ROUTERS


def all_kinds() -> dict[str, dict[str, str]]:
    """{"routers": {type: description}, "hooks": {...}, "metrics_providers": {...}}."""
    return {"routers": ROUTERS.listing(), "hooks": HOOKS.listing(), "metrics_providers": PROVIDERS.listing()}
