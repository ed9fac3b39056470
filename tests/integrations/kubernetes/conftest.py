"""Fixtures for the Kubernetes tests: the fake API server (with a kubeconfig pointing at it), a
Prometheus speaking the query API over HTTP, real Redis, and a Context configured for a router."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from integrations.kubernetes import health
from integrations.kubernetes.cluster import forget_clients
from integrations.registry.routers import API_CALLS
from tests.support.cluster import CONFIG
from tests.support.fake_apiserver import FakeApiServer
from tests.support.fakes import FakePrometheus
from tests.support.sim import Sim


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer(bookmark_interval=0.3).start()
    try:
        yield server
    finally:
        server.stop()
        forget_clients()
        health._kubes.clear()
    unexpected = server.calls - API_CALLS
    assert not unexpected, f"calls outside integrations.registry.routers.API_CALLS: {unexpected}"
    # A real API server drops a field its schema does not know, with only a warning: Sluice's write
    # would silently lose it.
    assert not server.warnings, f"Sluice wrote fields the API server does not know: {server.warnings}"


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus().start()
    server.default = 0.0
    # Plenty of healthy traffic for the versions these tests release: they pass unless a test
    # programs a failing candidate.
    for stable, candidates in (("1.0.0", ("1.1.0", "1.2.0", "1.3.0")), ("2.0.0", ("2.1.0", "2.2.0"))):
        server.serve(stable, 18000)
        for candidate in candidates:
            server.serve(candidate, 2000)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim(api: FakeApiServer) -> Sim:
    return Sim(api)


@pytest.fixture
def make_ctx(
    redis_url: str, prom: FakePrometheus, api: FakeApiServer, tmp_path: Path
) -> Iterator[Callable[..., Context]]:
    """A Context configured for a router, calling the API server as `account` (deploy/rbac.yaml's
    service accounts: the worker's by default, the watcher's for a watcher)."""
    made: list[Context] = []

    def make(
        router: str = "gateway-api", web_extra: str = "", cluster_extra: str = "", account: str = "sluice-worker"
    ) -> Context:
        kubeconfig = api.kubeconfig(tmp_path / f"kubeconfig-{account}", service_account=("sluice", account))
        text = CONFIG.format(kubeconfig=kubeconfig, router=router, web_extra=web_extra, cluster_extra=cluster_extra)
        ctx = Context(config=parse_config(text), redis_url=redis_url, prometheus_url=prom.url)
        made.append(ctx)
        make.arguments[id(ctx)] = (router, web_extra, cluster_extra)  # type: ignore[attr-defined]
        return ctx

    make.arguments = {}  # type: ignore[attr-defined]
    yield make
    for ctx in made:
        ctx.prometheus.close()
        ctx.store.r.close()


@pytest.fixture
def as_watcher(make_ctx: Callable[..., Context]) -> Callable[[Context], Context]:
    """The same configuration as `ctx`, as the watcher's service account (it may list and watch
    Deployments; the worker's may not)."""

    def watcher_ctx(ctx: Context) -> Context:
        return make_ctx(*make_ctx.arguments[id(ctx)], account="sluice-watcher")  # type: ignore[attr-defined]

    return watcher_ctx
