"""The demo's stand-in for CI: a local HTTP server receiving Sluice's signed webhooks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from integrations.notify.webhook import verify


class WebhookReceiver:
    """Stands in for CI: receives Sluice's signed webhooks and checks their signatures."""

    def __init__(self, secret: str):
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(
                    {
                        "event": self.headers.get("Sluice-Event"),
                        "delivery": self.headers.get("Sluice-Delivery"),
                        "verified": verify(receiver.secret, self.headers.get("Sluice-Signature", ""), body),
                        "payload": json.loads(body or b"{}"),
                    }
                )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sluice"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
