"""Compatibility: the router interface now lives in integrations/routers/ (interface.py, registry.py)."""

from __future__ import annotations

from integrations.routers.interface import Health, Router, RouterError
from integrations.routers.registry import router_for

__all__ = ["Health", "Router", "RouterError", "router_for"]
