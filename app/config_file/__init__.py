"""The configuration file: the whole of it, assembled from the registries of routers, hook kinds
and metric providers (schema.py), and loaded from YAML with errors that say what to fix (loader.py)."""
