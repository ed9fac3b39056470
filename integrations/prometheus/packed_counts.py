"""The judge's response counts for a batch of releases in one Prometheus request.

A tick asks for each version's counts over its step's span (two to four queries, see
app/release/observe.py `observe_evidence`); each span starts where its own release's step began,
so, unlike the checks (batch.py), they cannot be one `sum by` over the batch. They can be one
request: each release's exact query, tagged with its place in the list by `label_replace`, joined
by `or` (the tags keep every part's series apart). Prometheus evaluates each part as it would
alone, so a part's answer is the single query's answer. The profile of a worker's ticks
(benchmarks/profile_tick.py) showed these per-version HTTP requests to be the largest part of a
tick's CPU.

What the tick asks later is answered from memory when it is the same (service, version,
namespace, span start) and the tick's time is within PRIMED_FOR_SECONDS of the batch's: the
span then ends when the batch started rather than when the tick did, a few seconds at most, as
for the batch's checks. A span that ended before the batch (stable's counts before the release)
is asked pinned to its end with the `@` modifier (queries.counts_over_span) and answered for
that exact span. A part with no status series is not kept: the tick asks it alone, and
gets the reason (a failing scrape, labels that match nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from app.core.models import ResponseCounts
from integrations.prometheus.client import PRIMED_FOR_SECONDS, PrometheusQuerier

log = logging.getLogger("sluice.prometheus")
PART_LABEL = "sluice_part"
# Parts per request: a batch of 16 ticks asks at most 64; bounds a request's size (~1 KB a part).
MAX_PARTS = 128

# service, version, namespace, span start, span end (None: the batch's time, for a tick's "now")
CountsKey = tuple[str, str, str, float, float | None]
Row = tuple[dict[str, str], float | None]


def packed(queries: Sequence[str]) -> str:
    """One query whose series are each part's, labelled `PART_LABEL="<index>"`."""
    return " or ".join(f'label_replace({q}, "{PART_LABEL}", "{i}", "", "")' for i, q in enumerate(queries))


def split(rows: list[Row], parts: int) -> list[list[Row]] | None:
    """Each part's series without the tag; None if any series lacks a valid tag (an answer not
    grouped as asked, e.g. a proxy or stub that ignores the query: trust none of it)."""
    out: list[list[Row]] = [[] for _ in range(parts)]
    for labels, value in rows:
        tag = labels.pop(PART_LABEL, None)
        if tag is None or not tag.isdigit() or int(tag) >= parts:
            return None
        out[int(tag)].append((labels, value))
    return out


class PackedCounts:
    """Counts primed for one batch; `get` answers a tick's `response_counts` when it can."""

    def __init__(self) -> None:
        self._counts: dict[CountsKey, ResponseCounts] = {}
        self._at = 0.0

    def prime(
        self,
        querier: PrometheusQuerier,
        wanted: dict[CountsKey, str],
        at: float,
        parse: Callable[[list[Row]], ResponseCounts | None],
    ) -> int:
        """Ask `wanted` (key -> its single query, evaluated at `at`) in as few requests as MAX_PARTS
        allows; keep the parts that have data. Empty `wanted` forgets what was primed."""
        counts: dict[CountsKey, ResponseCounts] = {}
        items = list(wanted.items())
        for i in range(0, len(items), MAX_PARTS):
            chunk = items[i : i + MAX_PARTS]
            if len(chunk) < 2:
                continue  # one part: the tick's own query costs the same
            rows, error = querier.query_vector(packed([q for _, q in chunk]), at, form=True)
            parts = split(rows, len(chunk)) if error is None else None
            if parts is None:
                log.info("packed counts query failed (%s); ticks will ask one by one", error or "series not tagged")
                continue
            for (key, _), part in zip(chunk, parts, strict=True):
                result = parse(part)
                if result is not None:
                    counts[key] = result
        self._counts, self._at = counts, at
        return len(counts)

    def get(self, service: str, version: str, namespace: str, start: float, end: float) -> ResponseCounts | None:
        """The primed counts over [start, end], once: a span primed with this very end (one that
        ended before the batch), else one ending at the batch's time if `end` is close enough to it."""
        # Handed over, not copied: one tick asks each span once (a span is one release's), and a
        # deep copy of every answer cost more CPU than the rest of the lookup. Asked again, it is
        # asked alone.
        found = self._counts.pop((service, version, namespace, start, end), None)
        if found is None and abs(end - self._at) <= PRIMED_FOR_SECONDS:
            found = self._counts.pop((service, version, namespace, start, None), None)
        return found
