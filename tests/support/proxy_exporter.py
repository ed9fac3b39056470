"""A small exporter serving what a Kubernetes proxy and an application export, for a real Prometheus
to scrape (tests/integrations/prometheus/test_proxy_view.py).

Series are written exactly as the real exporters name them (ingress-nginx's
`nginx_ingress_controller_requests` has no `_total`; Istio's is `istio_requests_total`), so they are
served untyped: prometheus_client would add `_total` to a counter's name. Prometheus's functions do
not look at the type.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric

from app.cli.demo.stack import free_port


class ProxyExporter:
    """Counters by (metric, labels), served on 127.0.0.1; `add` counts answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # a collector is anything with collect()
        self.port = free_port()
        self.server: Any = None

    def start(self) -> ProxyExporter:
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, metric: str, labels: dict[str, str], n: float) -> None:
        key = (metric, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + n

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = dict(self._values)
        families: dict[str, Metric] = {}
        for (name, labels), value in sorted(values.items()):
            family = families.setdefault(name, Metric(name, f"{name} (test exporter)", "unknown"))
            family.add_sample(name, dict(labels), value)
        yield from families.values()
