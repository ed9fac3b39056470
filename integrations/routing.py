"""Compatibility: the router interface now lives in integrations/routers/ (interface.py, registry.py)."""

from __future__ import annotations

from integrations.registry.routers import router_for
from integrations.routers.interface import Health, Router, RouterError

__all__ = ["Health", "Router", "RouterError", "router_for"]
