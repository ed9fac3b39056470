"""The several-workers proof's Prometheus (chaos/swarm.py): the scale benchmark's answers
(benchmarks/scale.py, benchmarks/grouped_stub.py) from one Python process, so the proof needs no
nginx. Every version looks the same: the judge's counts query gets a realistic set of status and
bucket counts, a grouped query (`=~`) one labelled sample per (app, version), anything else one
sample of 0.5.

python -m chaos.swarm_prometheus PORT
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer

from benchmarks.grouped_stub import Handler as GroupedHandler
from benchmarks.grouped_stub import answer as grouped_answer
from benchmarks.scale import COUNTS_ANSWER, PROM_ANSWER


def answer(query: str, at: str) -> bytes:
    if "sluice_part" in query:  # a batch's packed counts (a POST form)
        return grouped_answer(query, at)
    if "present_over_time" in query:  # the order benchmarks/scale.py's nginx asks in
        return COUNTS_ANSWER.encode()
    if "=~" in query:
        return grouped_answer(query, at)
    return PROM_ANSWER.encode()


class Handler(GroupedHandler):
    answers = staticmethod(answer)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
