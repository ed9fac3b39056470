"""The proxy's view: which counter of the metrics backend holds the answers a router's proxy gave
each version, and how to read its series.

HAProxy's router counts its own answers (integrations/haproxy/stats.py). A Kubernetes router's proxy
(ingress-nginx, Istio's Envoy, Traefik, Contour's Envoy) exports them to Prometheus instead: a
router builds a `ProxyQuery` (integrations/kubernetes/proxy_series.py), a metrics backend that can
count it (integrations/prometheus/proxy_counts.py) turns it into `RouterCounts` per version, and the
judge counts those as it counts HAProxy's (app/core/judge/judging.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# What the matchers' values may be: Kubernetes names, versions, `@provider` suffixes and `|` between
# alternatives of a regex, its groups and `.+`. Every value is escaped again when the query is written; this refuses
# anything that could only come from a mistake.
VALUE_RE = re.compile(r"^[A-Za-z0-9_.:@|()+\-\\]{1,1000}$")


def regex_of(names: list[str]) -> str:
    """A PromQL (RE2) regex matching exactly these names."""
    return "|".join(re.escape(name) for name in sorted(set(names)))


@dataclass(frozen=True)
class ProxyQuery:
    """One proxy counter, the series of one service's versions, and how to read them.

    Label names here are the proxy's own (`service`, `namespace`...); `renamed` maps those that
    Prometheus stores under another name (`exported_service` when the scrape target has a `service`
    label of its own). `version_of(labels)` tells whose a series is (None: not one of ours);
    `made_by_proxy(labels)` whether its answers were made up by the proxy (a refused or reset
    connection, a timeout) rather than given by the application."""

    source: str  # who counted: "ingress-nginx", "istio", ... (shown in the judge's reasons)
    metric: str
    code_label: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, "=" or "=~", value)
    by: tuple[str, ...]  # labels to sum by (the code label included)
    version_of: Callable[[dict[str, str]], str | None]
    made_by_proxy: Callable[[dict[str, str]], bool] = field(default=lambda labels: False)
    renamed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not METRIC_NAME_RE.match(self.metric):
            raise ValueError(f"{self.metric!r} is not a metric name")
        for label in {self.code_label, *self.by, *(m[0] for m in self.matchers), *self.renamed.values()}:
            if not LABEL_NAME_RE.match(label):
                raise ValueError(f"{label!r} is not a label name")
        for label, op, value in self.matchers:
            if op not in ("=", "=~") or not VALUE_RE.match(value):
                raise ValueError(f"refusing the matcher {label}{op}{value!r}")

    def stored(self, label: str) -> str:
        """The name Prometheus stores a proxy's label under."""
        return self.renamed.get(label, label)

    def as_exported(self, labels: dict[str, str]) -> dict[str, str]:
        """A series' labels under the proxy's own names (undoing `renamed`)."""
        back = {stored: own for own, stored in self.renamed.items()}
        return {back.get(name, name): value for name, value in labels.items()}
