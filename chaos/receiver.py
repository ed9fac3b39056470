"""The hook receiver the chaos suite points Sluice's webhook at: it records every delivery.

Each POST is recorded on arrival (its `Sluice-Delivery` id, event, release and time), before it
is answered, so a delivery whose sender was killed mid-request is still seen. A release can be
marked slow: its first delivery (of an event) is answered after a delay, and `arrived` is set when that
delivery comes in, so the harness can kill the worker while the request is in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receipt:
    delivery: str
    event: str
    release: str
    at: float


@dataclass
class SlowRule:
    delay: float
    event: str | None = None  # only a delivery of this event (any, if None)
    arrived: threading.Event = field(default_factory=threading.Event)
    used: bool = False
    delivery: str = ""  # the delivery that was held


class HookReceiver:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.slow: dict[str, SlowRule] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                delivery = self.headers.get("Sluice-Delivery", "")
                release = delivery.split(":", 1)[0]
                delay = receiver.record(Receipt(delivery, self.headers.get("Sluice-Event", ""), release, time.time()))
                if delay:
                    time.sleep(delay)
                body = json.dumps({"ok": True}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender was killed while we waited

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, receipt: Receipt) -> float:
        """Keep the receipt; the delay to answer it with (a slow release's first delivery)."""
        with self.lock:
            self.receipts.append(receipt)
            rule = self.slow.get(receipt.release)
            if rule is None or rule.used or rule.event not in (None, receipt.event):
                return 0.0
            rule.used, rule.delivery = True, receipt.delivery
        rule.arrived.set()
        return rule.delay

    def slow_first(self, release: str, delay: float, event: str | None = None) -> SlowRule:
        rule = SlowRule(delay, event)
        with self.lock:
            self.slow[release] = rule
        return rule

    def counts(self, release: str) -> Counter[str]:
        """How many times each delivery id of a release arrived."""
        with self.lock:
            return Counter(r.delivery for r in self.receipts if r.release == release)

    def first_at(self, delivery: str) -> float | None:
        with self.lock:
            times = [r.at for r in self.receipts if r.delivery == delivery]
        return min(times) if times else None
