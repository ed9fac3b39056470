"""Reaction: from a candidate's first failed response to its HAProxy weight reaching 0.

The real local setup of `make demo` (Prometheus scraping every second, HAProxy, gunicorn,
Sluice web + worker at a 2 s evaluation interval), with N bad candidates released one after
another. The weight is read from HAProxy's runtime API every 20 ms; the first error is the
first 5xx the load generator saw from that candidate.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from app.cli.demo.run import DEMO_VERSIONS, SERVICE, STABLE, DemoStack, LoadGenerator
from benchmarks.common import table
from integrations.haproxy.runtime import RuntimeClient

INTERVAL_S, SCRAPE_S = 2.0, 1.0


class WeightWatcher(threading.Thread):
    """Polls one server's weight; remembers when it first went above 0 and when it came back to 0."""

    def __init__(self, socket: str, server: str, period: float = 0.02):
        super().__init__(daemon=True)
        self.client, self.server, self.period = RuntimeClient(socket), server, period
        self.raised_at: float | None = None
        self.zero_at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            weight = self.client.get_weight(SERVICE, self.server)
            now = time.time()
            if weight > 0 and self.raised_at is None:
                self.raised_at = now
            elif weight == 0 and self.raised_at is not None:
                self.zero_at = now
                return
            time.sleep(self.period)


def run(workdir: Path, runs: int = 10) -> tuple[str, list[float]]:
    workdir.mkdir(parents=True, exist_ok=True)
    bad = {f"2.0.{i}": {**DEMO_VERSIONS["1.0.372"]} for i in range(1, runs + 1)}
    stack = DemoStack(workdir, versions={STABLE: DEMO_VERSIONS[STABLE], **bad}, interval=f"{INTERVAL_S:g}s")
    load = None
    reactions: list[float] = []
    try:
        stack.start(say=lambda _m: None)
        load = LoadGenerator(stack.frontend_url, rate=40).start()
        stack.wait_for_scrapes()
        client = stack.client()
        for version in bad:
            watcher = WeightWatcher(stack.haproxy_socket, version)
            watcher.start()
            t0 = time.time()
            answer = client.deploy(SERVICE, version, application="bluesky")
            deadline = time.time() + 60
            while time.time() < deadline and client.release(answer["release"])["state"] not in ("failed", "succeeded"):
                time.sleep(0.2)
            watcher.join(timeout=10)
            watcher.done.set()
            first_error = next(
                (r.at for r in load.snapshot() if r.at >= t0 and r.version == version and r.status >= 500), None
            )
            if first_error is not None and watcher.zero_at is not None:
                reactions.append(watcher.zero_at - first_error)
            time.sleep(1)
    finally:
        if load:
            load.stop()
        stack.stop()
    target = INTERVAL_S + SCRAPE_S + 1
    rows = (
        [
            [
                len(reactions),
                f"{statistics.median(reactions):.2f}",
                f"{min(reactions):.2f}",
                f"{max(reactions):.2f}",
                f"{target:.0f}",
                "met" if max(reactions) <= target else "missed",
            ]
        ]
        if reactions
        else [[0, "—", "—", "—", f"{target:.0f}", "not measured"]]
    )
    text = table(["runs", "median s", "min s", "max s", "target s (interval + scrape + 1 s)", "target"], rows)
    text += (
        f"\n\nEvaluation interval {INTERVAL_S:g} s, Prometheus scrape interval {SCRAPE_S:g} s, tolerance 0, "
        "candidates answering 30% errors from their first request, 40 req/s through HAProxy (10% to the "
        "candidate). For reference: Flagger's fastest is interval × threshold with a 10 s floor; Vamp Cloud "
        "documented 30–60 s."
    )
    return text, reactions
