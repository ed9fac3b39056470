"""A misbehaving service for the release scenario suite (`make scenarios`, scenarios/).

Run it like the demo service: `gunicorn 'app.cli.demo.scenario_service:create_app()'` with
1 worker and a few threads. It is plain WSGI (no Flask) so that ~50 of them, serving a few
hundred requests a second between them, fit on two cores.

It exports what the demo service exports (`http_requests_total{app,version,code}` and
`http_request_duration_seconds{app,version}` with the same buckets), answers `/` with a JSON
body and an `X-Version` header, `/healthz` with 200 while the process lives, and `/metrics`.

Every fault is deterministic where it can be: fractions are served by counters (request n
fails when floor(n*rate) steps up), as in app/cli/demo/service.py, so a run is reproducible.
Timers count from the FIRST counted request this process served ("first traffic"), not from
process start: a candidate is started before its release, and what matters is how it behaves
once it gets traffic. Set SCN_CLOCK=start to count from process start instead.

Environment (all optional except SCN_VERSION):

  SCN_SERVICE               service label (default scn)
  SCN_VERSION               version label and X-Version header (required)
  SCN_LATENCY_MS            base latency (default 5)
  SCN_JITTER_MS             uniform 0..jitter added to every request (default 0)
  SCN_WARMUP_S              for this many seconds after the clock starts ...
  SCN_WARMUP_LATENCY_MS     ... add this latency (default 0: no warm-up)
  SCN_ERROR_RATE            fraction of `/` answered SCN_ERROR_CODE (default 0)
  SCN_ERROR_CODE            default 500
  SCN_CLIENT_ERROR_RATE     fraction of `/` answered SCN_CLIENT_ERROR_CODE (default 0; 1 = everything)
  SCN_CLIENT_ERROR_CODE     default 404
  SCN_SLOW_RATE             fraction of `/` answered after SCN_SLOW_MS instead (default 0)
  SCN_SLOW_MS               default 1000
  SCN_TIMEOUT_RATE          fraction of `/` that sleep SCN_TIMEOUT_S and then answer 200 (default 0):
  SCN_TIMEOUT_S             set it past the proxy's `timeout server` so the client gets a 504 while
                            this process records a slow 200 (default 4)
  SCN_CRASH_AFTER_S         exit (the whole gunicorn, master included) this long after the clock starts
  SCN_CRASH_AFTER_REQUESTS  ... or after serving this many counted requests
  SCN_METRICS_STOP_AFTER_S  after this long, /metrics answers 404 (the service keeps serving)
  SCN_SPIKE_FILE            a file shared by several processes: while it exists, the number of
                            milliseconds it holds is added to every request (a shared slowdown)
  SCN_LATER_AFTER_S         from this long after the clock starts (until SCN_LATER_UNTIL_S, default
  SCN_LATER_UNTIL_S         for ever) the SCN_LATER_* values below replace the base ones: a version
  SCN_LATER_LATENCY_MS      that recovers partly, or a few minutes of tail spikes
  SCN_LATER_JITTER_MS
  SCN_LATER_ERROR_RATE
  SCN_LATER_SLOW_RATE
  SCN_DRIFT_MS_PER_S        latency added per second since the clock started (a slow drift)
  SCN_ERROR_GROWTH_PER_S    error rate added per second since the clock started (errors that grow)
  SCN_BUSY_RPS              while this process served more than this many requests in the last second
  SCN_BUSY_ERROR_RATE       ... this fraction of `/` is answered 503 (a version that breaks under load)
  SCN_PREINIT_CODES         status codes exported at 0 from the start (default "200,500")
  SCN_CLOCK                 traffic (default) | start
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from app.cli.demo.scenario_faults import Dosed, Later, Schedule, SpikeFile, fraction, number

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class ScenarioSettings:
    service: str
    version: str
    latency_ms: float = 5.0
    jitter_ms: float = 0.0
    warmup_s: float = 0.0
    warmup_latency_ms: float = 0.0
    error_rate: Fraction = Fraction(0)
    error_code: int = 500
    client_error_rate: Fraction = Fraction(0)
    client_error_code: int = 404
    slow_rate: Fraction = Fraction(0)
    slow_ms: float = 1000.0
    timeout_rate: Fraction = Fraction(0)
    timeout_s: float = 4.0
    crash_after_s: float | None = None
    crash_after_requests: int | None = None
    metrics_stop_after_s: float | None = None
    spike_file: str | None = None
    preinit_codes: tuple[str, ...] = ("200", "500")
    clock: str = "traffic"
    later: Later | None = None
    drift_ms_per_s: float = 0.0
    error_growth_per_s: float = 0.0
    busy_rps: float | None = None
    busy_error_rate: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScenarioSettings:
        version = env.get("SCN_VERSION", "").strip()
        if not version:
            raise RuntimeError("SCN_VERSION is not set: run with SCN_VERSION=<the version to serve>")
        crash_requests = number(env, "SCN_CRASH_AFTER_REQUESTS", None)
        clock = env.get("SCN_CLOCK", "traffic").strip() or "traffic"
        if clock not in ("traffic", "start"):
            raise RuntimeError(f"SCN_CLOCK={clock!r}: use traffic or start")
        return cls(
            service=env.get("SCN_SERVICE", "scn").strip() or "scn",
            version=version,
            latency_ms=number(env, "SCN_LATENCY_MS", 5.0) or 0.0,
            jitter_ms=number(env, "SCN_JITTER_MS", 0.0) or 0.0,
            warmup_s=number(env, "SCN_WARMUP_S", 0.0) or 0.0,
            warmup_latency_ms=number(env, "SCN_WARMUP_LATENCY_MS", 0.0) or 0.0,
            error_rate=fraction(env, "SCN_ERROR_RATE"),
            error_code=int(number(env, "SCN_ERROR_CODE", 500) or 500),
            client_error_rate=fraction(env, "SCN_CLIENT_ERROR_RATE"),
            client_error_code=int(number(env, "SCN_CLIENT_ERROR_CODE", 404) or 404),
            slow_rate=fraction(env, "SCN_SLOW_RATE"),
            slow_ms=number(env, "SCN_SLOW_MS", 1000.0) or 0.0,
            timeout_rate=fraction(env, "SCN_TIMEOUT_RATE"),
            timeout_s=number(env, "SCN_TIMEOUT_S", 4.0) or 0.0,
            crash_after_s=number(env, "SCN_CRASH_AFTER_S", None),
            crash_after_requests=int(crash_requests) if crash_requests is not None else None,
            metrics_stop_after_s=number(env, "SCN_METRICS_STOP_AFTER_S", None),
            spike_file=env.get("SCN_SPIKE_FILE", "").strip() or None,
            preinit_codes=tuple(c.strip() for c in env.get("SCN_PREINIT_CODES", "200,500").split(",") if c.strip()),
            clock=clock,
            later=Later.from_env(env),
            drift_ms_per_s=number(env, "SCN_DRIFT_MS_PER_S", 0.0) or 0.0,
            error_growth_per_s=number(env, "SCN_ERROR_GROWTH_PER_S", 0.0) or 0.0,
            busy_rps=number(env, "SCN_BUSY_RPS", None),
            busy_error_rate=float(fraction(env, "SCN_BUSY_ERROR_RATE")),
        )


def crash_now() -> None:
    """Take the whole service down as a crash would: the gunicorn master too, so the port closes."""
    parent = os.getppid()
    if parent > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(parent, signal.SIGKILL)
    os._exit(3)


class ScenarioApp:
    def __init__(self, settings: ScenarioSettings, crash: Callable[[], None] = crash_now):
        self.settings = s = settings
        self.crash = crash
        self.registry = CollectorRegistry()
        self.requests_total = Counter(
            "http_requests_total", "HTTP requests answered.", ["app", "version", "code"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["app", "version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        for code in s.preinit_codes:
            self.requests_total.labels(app=s.service, version=s.version, code=code)
        self.duration.labels(app=s.service, version=s.version)
        self.errors = Schedule(s.error_rate)
        self.client_errors = Schedule(s.client_error_rate)
        self.slow = Schedule(s.slow_rate)
        self.timeouts = Schedule(s.timeout_rate)
        self.spike = SpikeFile(s.spike_file)
        self.later_errors, self.later_slow, self.grown_errors, self.busy = Dosed(), Dosed(), Dosed(), Dosed()
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._served = 0
        self.clock_started: float | None = time.monotonic() if s.clock == "start" else None
        self._crashed = False
        if s.crash_after_s is not None and s.clock == "start":
            self._arm_crash_timer(s.crash_after_s)

    # --- time -----------------------------------------------------------------------------------

    def _start_clock(self) -> None:
        with self._lock:
            if self.clock_started is not None:
                return
            self.clock_started = time.monotonic()
        if self.settings.crash_after_s is not None:
            self._arm_crash_timer(self.settings.crash_after_s)

    def _arm_crash_timer(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._do_crash)
        timer.daemon = True
        timer.start()

    def _do_crash(self) -> None:
        if not self._crashed:
            self._crashed = True
            self.crash()

    def elapsed(self) -> float | None:
        return None if self.clock_started is None else time.monotonic() - self.clock_started

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            return self._send(start_response, 200, {"status": "ok", "version": self.settings.version})
        if path == "/metrics":
            elapsed = self.elapsed()
            stop = self.settings.metrics_stop_after_s
            if stop is not None and elapsed is not None and elapsed >= stop:
                return self._send(start_response, 404, {"error": "metrics are gone (SCN_METRICS_STOP_AFTER_S)"})
            body = generate_latest(self.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
            return [body]
        return self._serve(start_response)

    def _serve(self, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        s = self.settings
        self._start_clock()
        with self._lock:
            self._served += 1
            served = self._served
        elapsed = self.elapsed() or 0.0
        later = s.later if s.later is not None and s.later.active(elapsed) else None
        base_ms = s.latency_ms if later is None or later.latency_ms is None else later.latency_ms
        jitter_ms = s.jitter_ms if later is None or later.jitter_ms is None else later.jitter_ms
        delay_ms = base_ms + (random.uniform(0, jitter_ms) if jitter_ms else 0.0) + self.spike.extra_ms()
        delay_ms += s.drift_ms_per_s * elapsed
        if s.warmup_s and elapsed < s.warmup_s:
            delay_ms += s.warmup_latency_ms
        # Each schedule advances on every request, so each fault keeps its exact rate.
        timed_out, slow, error, client_error = (
            self.timeouts.next(),
            self.slow.next(),
            self.errors.next(),
            self.client_errors.next(),
        )
        error, slow, busy = self._phased(later, elapsed, error, slow)
        if timed_out:
            delay_ms = max(delay_ms, s.timeout_s * 1000)
        elif slow:
            delay_ms = max(delay_ms, s.slow_ms)
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        body: dict[str, Any] = {"service": s.service, "version": s.version}
        if busy and not timed_out:
            code, body["error"] = 503, "overloaded (SCN_BUSY_RPS)"
        elif error and not timed_out:
            code, body["error"] = s.error_code, "injected failure (SCN_ERROR_RATE)"
        elif client_error and not timed_out:
            code, body["error"] = s.client_error_code, "injected client error (SCN_CLIENT_ERROR_RATE)"
        else:
            code = 200
        labels = {"app": s.service, "version": s.version}
        self.requests_total.labels(code=str(code), **labels).inc()
        self.duration.labels(**labels).observe(time.perf_counter() - started)
        if s.crash_after_requests is not None and served >= s.crash_after_requests:
            threading.Timer(0.05, self._do_crash).start()  # after this response is written
        return self._send(start_response, code, body)

    def _phased(self, later: Later | None, elapsed: float, error: bool, slow: bool) -> tuple[bool, bool, bool]:
        """The time-varying faults: the later phase's rates replace the base ones; growing errors
        and the overload errors come on top."""
        s = self.settings
        if later is not None and later.error_rate is not None:
            error = self.later_errors.next(later.error_rate)
        if later is not None and later.slow_rate is not None:
            slow = self.later_slow.next(later.slow_rate)
        if s.error_growth_per_s:
            error = self.grown_errors.next(s.error_growth_per_s * elapsed) or error
        busy = False
        if s.busy_rps is not None:
            now = time.monotonic()
            with self._lock:
                self._recent.append(now)
                while self._recent and self._recent[0] < now - 1.0:
                    self._recent.popleft()
                load = len(self._recent)
            busy = load > s.busy_rps and self.busy.next(s.busy_error_rate)
        return error, slow, busy

    def _send(self, start_response: StartResponse, code: int, body: dict[str, Any]) -> Iterable[bytes]:
        data = json.dumps(body).encode()
        start_response(
            f"{code} {REASONS.get(code, 'Status')}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("X-Version", self.settings.version),
            ],
        )
        return [data]


def create_app(env: Mapping[str, str] | None = None) -> ScenarioApp:
    return ScenarioApp(ScenarioSettings.from_env(os.environ if env is None else env))
