"""A webhook gate over real HTTP: verifies Sluice's signature as a receiver would, then answers as told."""

from __future__ import annotations

import json
import time
from typing import Any

from app.core.webhook_signing import SignatureError, verify
from tests.support.fakes import Recorded, Reply, _Server


class GateServer:
    """Checks the Standard Webhooks signature (webhook-id, -timestamp, -signature) with `secret` (a
    wrong or missing one gets 401, as a real receiver
    would answer), then answers with the queued replies in order, then `default`."""

    def __init__(self, secret: str):
        self.secret = secret
        self.replies: list[Reply] = []
        self.default = Reply(200, {"Content-Type": "application/json"}, b'{"go": true}')
        self.verified: list[bool] = []
        self._server = _Server(self._answer)
        self.url = self._server.url
        self.requests = self._server.requests

    def reply(self, *replies: Reply) -> None:
        self.replies += replies

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]

    def _answer(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        h = {k.lower(): v for k, v in rec.headers.items()}
        try:
            verify(
                self.secret,
                h.get("webhook-id"),
                h.get("webhook-timestamp"),
                h.get("webhook-signature"),
                rec.body,
                time.time(),
            )
            ok = True
        except SignatureError:
            ok = False
        self.verified.append(ok)
        if not ok:
            return 401, {"Content-Type": "application/json"}, b'{"reason": "bad signature"}'
        reply = self.replies.pop(0) if self.replies else self.default
        return reply.status, {"Content-Type": "text/plain", **reply.headers}, reply.body

    def start(self) -> GateServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
