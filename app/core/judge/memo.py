"""Where the judge's arithmetic may be remembered: a seam, so that the pure modules stay pure.

The comparisons' statistics (app/core/judge/evidence.py `judge`, distribution.py `judge_latency`)
are pure functions of counts and settings, and most of a tick's CPU. A release whose counts did
not change since its last evaluation (scrapes are often slower than ticks) asks them the same
question again. The judge calls them through `StepContext.memo`: `direct` here (no memory), a
remembering one from the worker (app/release/judge_memo.py). Only the arithmetic goes through
it, never `now`: what depends on time (warmup, a step's duration, timeouts) is decided each time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Memo(Protocol):
    """Calls `fn(*args, **kwargs)`, a pure function, or returns what it returned for equal arguments."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


def direct(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """No memory: every call computes."""
    return fn(*args, **kwargs)
