"""Routers: how Sluice splits a service's traffic between versions (interface.py, registry.py)."""
