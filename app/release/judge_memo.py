"""The worker's memory of the judge's arithmetic (app/core/judge/memo.py): judge only when the counts changed.

A release's counts often do not change between two ticks (a scrape every 15-30 s, a tick every
10 s; a quiet service), and then its comparisons would recompute the same statistics: most of a
tick's CPU (benchmarks/profile_tick.py). The judge calls its statistics through this memo, which
remembers each call's answer under a digest of the function and every argument (counts, α, margin,
floor, the α plan's spending, the priors carried from earlier steps): equal inputs, the answer
computed before; any changed count or setting, a new computation. The statistics are pure and
their answers frozen dataclasses, so a remembered answer is the one they would give. Nothing
about time goes in (`now` is not an argument of theirs): warmup, a step's duration, the evidence
timeout and the bake's end are decided at every tick as before.

Per worker process, in memory only: a restarted worker computes again, loses nothing. Bounded
(MAX_ENTRIES, oldest forgotten first): a few entries per running release.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_ATOMS = frozenset({float, int, str, bool, type(None)})
# About 4 comparisons (errors, 4xx, slow, latency) for each of 10,000 releases, and room to spare.
MAX_ENTRIES = 65_536


class JudgeMemo:
    """Remembers pure calls by a digest of their arguments; thread-safe (a batch's ticks share it)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._answers: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not (plain(args) and plain(tuple(kwargs.values()))):
            return fn(*args, **kwargs)  # an argument whose repr may not show its value: not remembered
        key = digest(fn, args, kwargs)
        with self._lock:
            if key in self._answers:
                self.hits += 1
                self._answers.move_to_end(key)
                return self._answers[key]
            self.misses += 1
        answer = fn(*args, **kwargs)  # outside the lock: ticks on other threads go on meanwhile
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)
        return answer

    def __len__(self) -> int:
        return len(self._answers)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self.hits = self.misses = 0


def digest(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """128 bits of the call's repr: floats' repr is exact (round-trips), the dataclasses' repr lists
    every field, so equal digests mean equal arguments (a collision: about 2^-64 at 2^32 entries)."""
    text = repr((fn.__module__, fn.__qualname__, args, sorted(kwargs.items())))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def plain(value: Any) -> bool:
    """Whether `repr(value)` shows all of it: numbers, strings, None, tuples and lists of them, and
    frozen dataclasses of them (the statistics' settings). Anything else (an object's default repr
    names its address, which a later object may reuse) is never remembered."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is tuple or kind is list:
        return all(type(v) in _ATOMS or plain(v) for v in value)  # atoms first: histograms are many
    params = getattr(type(value), "__dataclass_params__", None)
    if params is not None and params.frozen:
        return all(f.repr and plain(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


# The tick's (workers/tick.py): one per worker process.
JUDGE_MEMO = JudgeMemo()
