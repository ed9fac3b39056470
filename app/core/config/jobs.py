"""`jobs:` in the configuration: how long replay and backtest results are kept (API and dashboard)."""

from __future__ import annotations

from pydantic import Field

from app.core.config.base import Duration, Strict


class JobsConfig(Strict):
    result_ttl: Duration = Field(
        7 * 86400.0,
        description="How long a replay's or backtest's result is kept after it was asked for (default 168h, 7 days).",
    )
    dedup_window: Duration = Field(
        60.0,
        description="The same request within this time returns the job already asked for instead of a new one "
        "(a double click runs once).",
    )
