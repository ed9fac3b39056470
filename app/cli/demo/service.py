"""The demo web service: one gunicorn process per version, behind HAProxy, scraped by Prometheus.

Run it as `DEMO_VERSION=1.0.371 gunicorn 'app.cli.demo.service:create_app()'`. Its failures are
injected deterministically (a counter, not a coin) so that a demo or a test that asks for a
30% error rate sees exactly 3 failures in every 10 requests and judges the same way every run.

Environment: DEMO_SERVICE (default blueskygreenbuilds), DEMO_VERSION (required),
DEMO_ERROR_RATE (fraction 0..1 of `/` answered 500, default 0), DEMO_LATENCY_MS (default 5),
DEMO_JITTER_MS (uniform 0..jitter added to the latency, default 0), DEMO_DEGRADE_FILE (while this
file exists, the error rate is the fraction it holds instead: a version that goes bad while it
serves, e.g. minutes after its promotion, as the bake's test needs).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
UNCOUNTED = ("/healthz", "/metrics")


@dataclass(frozen=True)
class DemoSettings:
    service: str
    version: str
    error_rate: Fraction
    latency_ms: float
    jitter_ms: float
    degrade_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DemoSettings:
        version = env.get("DEMO_VERSION", "").strip()
        if not version:
            raise RuntimeError("DEMO_VERSION is not set: run with DEMO_VERSION=<the version to serve>")
        return cls(
            service=env.get("DEMO_SERVICE", "blueskygreenbuilds").strip() or "blueskygreenbuilds",
            version=version,
            error_rate=_fraction(env.get("DEMO_ERROR_RATE", "0"), "DEMO_ERROR_RATE"),
            latency_ms=_non_negative(env.get("DEMO_LATENCY_MS", "5"), "DEMO_LATENCY_MS"),
            jitter_ms=_non_negative(env.get("DEMO_JITTER_MS", "0"), "DEMO_JITTER_MS"),
            degrade_file=env.get("DEMO_DEGRADE_FILE", "").strip(),
        )


def _fraction(text: str, name: str) -> Fraction:
    """Parsed exactly (Fraction('0.3') is 3/10), so 100 requests at 0.3 fail exactly 30 times."""
    try:
        value = Fraction(text.strip() or "0")
    except ValueError:
        raise RuntimeError(f"{name}={text!r} is not a number: use a fraction such as 0.3") from None
    if not 0 <= value <= 1:
        raise RuntimeError(f"{name}={text!r} is out of range: use a fraction between 0 and 1")
    return value


def _non_negative(text: str, name: str) -> float:
    try:
        value = float(text.strip() or "0")
    except ValueError:
        raise RuntimeError(f"{name}={text!r} is not a number of milliseconds") from None
    if value < 0:
        raise RuntimeError(f"{name}={text!r} cannot be negative")
    return value


class FailureSchedule:
    """Request n (1-based) fails when floor(n*rate) steps up: exactly floor(N*rate) of the first N."""

    def __init__(self, rate: Fraction):
        self.rate = rate
        self._count = 0
        self._lock = threading.Lock()  # gunicorn runs the app in several threads

    def next_fails(self) -> bool:
        with self._lock:
            self._count += 1
            n = self._count
        return math.floor(n * self.rate) > math.floor((n - 1) * self.rate)


class Degrade:
    """DEMO_DEGRADE_FILE: while the file exists, requests fail at the rate it holds (read at most
    every quarter second; its own deterministic schedule, started when the file appears)."""

    def __init__(self, path: str):
        self.path = path
        self._schedule: FailureSchedule | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def schedule(self) -> FailureSchedule | None:
        if not self.path:
            return None
        with self._lock:
            if time.monotonic() - self._read_at > 0.25:
                self._read_at = time.monotonic()
                try:
                    with open(self.path) as f:
                        rate = _fraction(f.read().strip() or "0", "DEMO_DEGRADE_FILE")
                except FileNotFoundError:
                    self._schedule = None
                else:
                    if self._schedule is None or self._schedule.rate != rate:
                        self._schedule = FailureSchedule(rate)
            return self._schedule


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    settings = DemoSettings.from_env(os.environ if env is None else env)
    # A registry per app, so that several apps (tests, versions) in one process do not collide.
    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests_total", "HTTP requests answered.", ["app", "version", "code"], registry=registry
    )
    duration = Histogram(
        "http_request_duration_seconds",
        "Time to answer an HTTP request.",
        ["app", "version"],
        buckets=BUCKETS,
        registry=registry,
    )
    failures = FailureSchedule(settings.error_rate)
    degrade = Degrade(settings.degrade_file)
    # Export every series at 0 from the start (Prometheus practice): a counter that first
    # appears with its first error needs two scrapes before rate() sees it, which would
    # delay the verdict on a bad version by a scrape interval.
    for code in ("200", "500"):
        requests_total.labels(app=settings.service, version=settings.version, code=code)
    duration.labels(app=settings.service, version=settings.version)

    app = Flask(__name__)
    app.config["DEMO"] = settings

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        if request.path not in UNCOUNTED:
            labels = {"app": settings.service, "version": settings.version}
            requests_total.labels(code=str(response.status_code), **labels).inc()
            duration.labels(**labels).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.get("/")
    def index() -> tuple[Response, int]:
        delay = settings.latency_ms + (random.uniform(0, settings.jitter_ms) if settings.jitter_ms else 0)
        if delay > 0:
            time.sleep(delay / 1000)
        body = {"service": settings.service, "version": settings.version}
        if (degrade.schedule() or failures).next_fails():
            return jsonify({**body, "error": "injected failure (DEMO_ERROR_RATE)"}), 500
        return jsonify(body), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify({"status": "ok", "version": settings.version}), 200

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return app
