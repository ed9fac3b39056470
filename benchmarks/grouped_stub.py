"""The scale benchmark's answer to grouped Prometheus queries (`sum by (app, version)` over
`app=~"a|b"`, `version=~"x|y"`): one labelled series per pair, value 0.5. Single queries are
answered by nginx with a static body; nginx hands only the grouped ones (`=~`) to this."""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_MATCHER = re.compile(r'(\w+)=~"([^"]*)"')


def answer(query: str, at: str) -> bytes:
    alternatives: dict[str, list[str]] = {}
    for label, regex in _MATCHER.findall(query):
        if label in ("app", "version", "namespace"):
            alternatives[label] = [v.replace("\\\\.", ".").replace("\\.", ".") for v in regex.split("|")]
    series = [
        {"metric": {"app": app, "version": version}, "value": [float(at), "0.5"]}
        for app in alternatives.get("app", [])
        for version in alternatives.get("version", [])
    ]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()


class Handler(BaseHTTPRequestHandler):
    """Answers Prometheus's query API with `answers(query, time)` (a subclass may set another)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    answers = staticmethod(answer)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        params = parse_qs(urlsplit(self.path).query)
        body = self.answers(params.get("query", [""])[0], params.get("time", ["0"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
