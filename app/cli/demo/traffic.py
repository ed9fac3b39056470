"""The demo's load: steady requests through HAProxy, each recorded with the version that answered it,
and what they show about a release (who answered during its segment step, how fast a bad version
lost its traffic)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"


@dataclass
class Response:
    at: float
    version: str | None
    status: int
    segment: bool = False  # the request carried the segment's header


class LoadGenerator:
    """Steady traffic through HAProxy, recording which version answered each request."""

    def __init__(
        self, url: str, rate: float = 40.0, threads: int = 4, max_seconds: float = 600.0, segment_every: int = 0
    ):
        self.url, self.rate, self.threads, self.max_seconds = url, rate, threads, max_seconds
        self.segment_every = segment_every  # every n-th request of a thread carries the Chrome User-Agent
        self.responses: list[Response] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> LoadGenerator:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self) -> None:
        session = requests.Session()
        period = self.threads / self.rate
        deadline = time.monotonic() + self.max_seconds  # bounded, whatever happens to the caller
        next_at = time.monotonic()
        sent = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent += 1
            chrome = bool(self.segment_every) and sent % self.segment_every == 0
            try:
                resp = session.get(self.url, timeout=5, headers={"User-Agent": CHROME_UA} if chrome else None)
                version = resp.headers.get("X-Version") or _version_of(resp)
                status = resp.status_code
            except requests.RequestException:
                version, status = None, 0
            with self._lock:
                self.responses.append(Response(time.time(), version, status, chrome))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=10)

    def between(self, start: float, end: float) -> Counter[str]:
        with self._lock:
            return Counter(r.version or "error" for r in self.responses if start <= r.at < end)

    def by_segment(self, start: float, end: float) -> dict[bool, Counter[str]]:
        """{True: versions that answered requests with the segment's header, False: the others}."""
        with self._lock:
            spans = [r for r in self.responses if start <= r.at < end]
        return {seg: Counter(r.version or "error" for r in spans if r.segment == seg) for seg in (True, False)}

    def snapshot(self) -> list[Response]:
        with self._lock:
            return list(self.responses)


def _version_of(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("version") if isinstance(body, dict) else None


def segment_traffic(load: LoadGenerator, release: dict[str, Any]) -> dict[bool, Counter[str]] | None:
    """Who answered during the release's segment step (its first), with and without the header."""
    changes = [e for e in release["events"] if e["type"] == "weights_set"]
    if len(changes) < 2 or "segment" not in changes[0]["message"]:
        return None
    return load.by_segment(changes[0]["at"] + 0.3, changes[1]["at"])


def reaction_times(load: LoadGenerator, release: dict[str, Any], t0: float) -> dict[str, float | None]:
    """From the bad version's first error to (a) Sluice's stable weights and (b) its last response."""
    bad = release["target_version"]
    responses = [r for r in load.snapshot() if r.at >= t0 and r.version == bad]
    first_error = next((r.at for r in responses if r.status >= 500), None)
    last_response = responses[-1].at if responses else None
    # The first weights change after the first error that leaves the bad version at 0 (a segment
    # step also has it at 0, before any error: it serves only the segment then).
    failed_at = next(
        (
            e["at"]
            for e in release["events"]
            if e["type"] == "weights_set"
            and e["data"].get("weights", {}).get(bad, 0) == 0
            and first_error is not None
            and e["at"] >= first_error
        ),
        None,
    )
    return {
        "first_error": first_error,
        "to_weight_zero": (failed_at - first_error) if failed_at and first_error else None,
        "to_last_response": (last_response - first_error) if last_response and first_error else None,
    }
