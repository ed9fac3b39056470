"""Adapters to outside systems, each behind a small interface."""
