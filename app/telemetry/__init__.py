"""Sluice's own logs and metrics."""
