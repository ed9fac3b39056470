"""The scale benchmark's answer to grouped Prometheus queries (`sum by (app, version)` over
`app=~"a|b"`, `version=~"x|y"`): one labelled series per pair, value 0.5; and to a batch's
packed counts query (a POST form, integrations/prometheus/packed_counts.py): COUNTS_ROWS for
each tagged part, grown at a scrape's pace (SCRAPE_SECONDS). Single queries are answered by nginx
with a static body; nginx hands only the grouped (`=~`) and POSTed ones to this."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_MATCHER = re.compile(r'(\w+)=~"([^"]*)"')
_PART = re.compile(r'"sluice_part", "(\d+)"')
_SELECTOR = re.compile(r"\{([^}]*)\}")
# The judge's counts query (status codes `or` histogram buckets, integrations/prometheus/queries.py):
# what a real service's counters give over a span (20,000 requests, 0.5% 5xx, 1% 404), so that
# ticks take the path they take in production, not the "why is there no data" one; enough for the
# judge's promotion floor (3x stable's error rate) to be ruled out, so releases promote.
COUNTS_ROWS: list[tuple[dict[str, str], int]] = [
    ({"code": "200"}, 19700),
    ({"code": "500"}, 100),
    ({"code": "404"}, 200),
] + [
    ({"le": le}, count)
    for le, count in (("0.1", 14000), ("0.25", 18000), ("0.5", 19600), ("1.0", 19900), ("+Inf", 20000))
]


# Like a scrape: each series' counts move every SCRAPE_SECONDS (at its own phase), growing by 1% of
# COUNTS_ROWS a scrape since the stub started; its rates stay COUNTS_ROWS's. Counts that never moved
# would let the worker's judge memo (app/release/judge_memo.py) answer every tick after the first.
# SCRAPE_SECONDS=0: COUNTS_ROWS as they are, always.
SCRAPE_SECONDS = float(os.environ.get("SLUICE_BENCH_SCRAPE_SECONDS", "15"))
STARTED = time.time()


def scrapes(selector: str, at: float) -> int:
    """How many scrapes of the series `selector` picks have happened by `at` since the stub started."""
    if SCRAPE_SECONDS <= 0:
        return 0
    phase = zlib.crc32(selector.encode()) % 1000 / 1000 * SCRAPE_SECONDS
    return max(0, int((at - STARTED + phase) // SCRAPE_SECONDS))


def packed_answer(query: str, at: str) -> bytes:
    """Each part of a packed query tagged as Prometheus's label_replace would: a grouped check's
    (`=~`) series, or COUNTS_ROWS grown by their series' scrapes for a counts part."""
    series = []
    for chunk in query.split("label_replace(")[1:]:
        tag = _PART.search(chunk)
        selector = _SELECTOR.search(chunk)
        if tag is None:
            continue
        if "=~" in chunk:
            series += [dict(s, metric=dict(s["metric"], sluice_part=tag.group(1))) for s in grouped_series(chunk, at)]
            continue
        grown = 1 + scrapes(selector.group(1) if selector else "", float(at)) / 100
        series += [
            {"metric": dict(labels, sluice_part=tag.group(1)), "value": [float(at), str(value * grown)]}
            for labels, value in COUNTS_ROWS
        ]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()


def grouped_series(query: str, at: str) -> list[dict]:
    """A grouped check query's answer: value 0.5 for every (app, version) its matchers name."""
    alternatives: dict[str, list[str]] = {}
    for label, regex in _MATCHER.findall(query):
        if label in ("app", "version", "namespace"):
            alternatives[label] = [v.replace("\\\\.", ".").replace("\\.", ".") for v in regex.split("|")]
    return [
        {"metric": {"app": app, "version": version}, "value": [float(at), "0.5"]}
        for app in alternatives.get("app", [])
        for version in alternatives.get("version", [])
    ]


def answer(query: str, at: str) -> bytes:
    if "sluice_part" in query:
        return packed_answer(query, at)
    series = grouped_series(query, at)
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()


class Handler(BaseHTTPRequestHandler):
    """Answers Prometheus's query API with `answers(query, time)` (a subclass may set another)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    answers = staticmethod(answer)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(parse_qs(urlsplit(self.path).query))

    def do_POST(self) -> None:  # noqa: N802 - Prometheus's query API takes a form too
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(parse_qs(self.rfile.read(length).decode()))

    def _answer(self, params: dict[str, list[str]]) -> None:
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
