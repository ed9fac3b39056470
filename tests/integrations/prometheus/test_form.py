"""The packed query's POST body (integrations/prometheus/form.py) is what `urlencode` makes of it."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlencode

from integrations.prometheus.form import form_body


def test_the_body_is_urlencodes_on_any_text() -> None:
    rng = random.Random(21)
    alphabet = [chr(c) for c in range(0, 0x250)] + list('{}[]()"=~!@ +&%#/\\,:;\n\t') + ["é", "→", "😀"]
    for _ in range(2_000):
        fields = {"query": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))), "time": "1.500"}
        assert form_body(fields) == urlencode(fields).encode("ascii")


def test_a_packed_query_round_trips() -> None:
    query = (
        'label_replace(sum by (code) (increase(http_requests_total{app="a b",version="1.0"}[300s] @ 1.000)),'
        ' "sluice_part", "0", "", "")'
    )
    assert parse_qs(form_body({"query": query, "time": "17.000"}).decode()) == {"query": [query], "time": ["17.000"]}
