"""A release's life: intake, the engine that records decisions, steering, rollback, gates, scaling,
hooks, and what the API shows of it."""
