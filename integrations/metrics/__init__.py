"""Metric providers: where check values and response counts come from (interface.py, registry.py)."""
