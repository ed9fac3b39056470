"""Prometheus: PromQL templating with escaping, and queries with timeouts."""
