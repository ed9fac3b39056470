"""The scenario service's faults that are counted or timed (app/cli/demo/scenario_service.py):
exact-rate counters, rates that change over time, a second phase, the shared spike file."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction


def fraction(env: Mapping[str, str], name: str) -> Fraction:
    text = env.get(name, "0").strip() or "0"
    try:
        value = Fraction(text)
    except ValueError:
        raise RuntimeError(f"{name}={text!r} is not a number: use a fraction such as 0.3") from None
    if not 0 <= value <= 1:
        raise RuntimeError(f"{name}={text!r} is out of range: use a fraction between 0 and 1")
    return value


def number(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise RuntimeError(f"{name}={text!r} is not a number") from None
    if value < 0:
        raise RuntimeError(f"{name}={text!r} cannot be negative")
    return value


@dataclass(frozen=True)
class Later:
    """A second phase, [after_s, until_s) after the clock starts: values that replace the base ones (None: kept)."""

    after_s: float
    until_s: float = math.inf
    latency_ms: float | None = None
    jitter_ms: float | None = None
    error_rate: float | None = None
    slow_rate: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Later | None:
        after = number(env, "SCN_LATER_AFTER_S", None)
        if after is None:
            return None

        def rate(name: str) -> float | None:
            return float(fraction(env, name)) if env.get(name, "").strip() else None

        return cls(
            after_s=after,
            until_s=number(env, "SCN_LATER_UNTIL_S", math.inf) or math.inf,
            latency_ms=number(env, "SCN_LATER_LATENCY_MS", None),
            jitter_ms=number(env, "SCN_LATER_JITTER_MS", None),
            error_rate=rate("SCN_LATER_ERROR_RATE"),
            slow_rate=rate("SCN_LATER_SLOW_RATE"),
        )

    def active(self, elapsed: float) -> bool:
        return self.after_s <= elapsed < self.until_s


class Dosed:
    """Picks requests at a rate that may change request by request (the time-varying faults):
    request n is picked when the running sum of the rates steps over an integer."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._lock = threading.Lock()

    def next(self, rate: float) -> bool:
        with self._lock:
            before = self._sum
            self._sum += min(max(rate, 0.0), 1.0)
            return math.floor(self._sum + 1e-12) > math.floor(before + 1e-12)


class Schedule:
    """Request n (1-based) is picked when floor(n*rate) steps up: exactly floor(N*rate) of the first N."""

    def __init__(self, rate: Fraction):
        self.rate = rate
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> bool:
        if not self.rate:
            return False
        with self._lock:
            self._count += 1
            n = self._count
        return math.floor(n * self.rate) > math.floor((n - 1) * self.rate)


class SpikeFile:
    """The shared slowdown: milliseconds read from a file, re-read at most every 0.2 s."""

    def __init__(self, path: str | None):
        self.path = path
        self._value = 0.0
        self._read_at = 0.0

    def extra_ms(self) -> float:
        if not self.path:
            return 0.0
        now = time.monotonic()
        if now - self._read_at > 0.2:
            self._read_at = now
            try:
                with open(self.path) as f:
                    self._value = float(f.read().strip() or "0")
            except (OSError, ValueError):
                self._value = 0.0
        return self._value
