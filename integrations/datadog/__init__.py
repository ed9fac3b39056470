"""Datadog as a metrics provider: the metrics query API (v1), with API and application keys."""
