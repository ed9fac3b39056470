"""The watcher and a fleet: a new version's Deployment announces the service's fleet (whose first wave
releases that cluster), not a release of its own cluster alone that would skip the waves."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from tests.support.fake_apiserver import FakeApiServer
from tests.support.fakes import FakePrometheus
from tests.support.sim import Sim, running_watcher, wait_for

pytestmark = pytest.mark.integration

CONFIG = """
prometheus: {{url: "{prom}", timeout: 2s}}
applications:
  - name: shop
    namespace: prod
    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s}}
    router: {{type: gateway-api}}
    services: [{{name: api, port: 9000, policy: canary, stable_version: 2.0.0}}]
  - name: edge
    router: {{type: haproxy, socket: "127.0.0.1:1"}}
    services: [{{name: api, policy: canary, stable_version: 2.0.0}}]
policies:
  - {{name: canary, interval: 500ms, steps: [{{weight: 10}}, {{weight: 100}}]}}
fleets:
  - {{name: api-everywhere, service: api, waves: [[shop], [edge]]}}
"""


def test_a_new_deployment_announces_the_fleet(
    api: FakeApiServer, sim: Sim, prom: FakePrometheus, redis_url: str, tmp_path: Path
) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", service_account=("sluice", "sluice-watcher"))
    ctx = Context(
        config=parse_config(CONFIG.format(prom=prom.url, kubeconfig=kubeconfig)),
        redis_url=redis_url,
        prometheus_url=prom.url,
    )
    try:
        sim.deployment("api", "2.0.0")
        with running_watcher(ctx) as watcher:
            sim.deployment("api", "2.1.0")
            wait_for(lambda: watcher.started, what="the watcher to announce 2.1.0")
        [fleet] = ctx.store.fleets.recent()
        assert (fleet.version, fleet.trigger, fleet.state) == ("2.1.0", "kubernetes", "running")
        assert list(fleet.waves[0].releases) == ["shop"] and fleet.waves[1].state == "pending"
        [release] = ctx.store.list_releases()[0]
        assert release.id == watcher.started[0].release_id == fleet.waves[0].releases["shop"]
        assert release.fleet == fleet.id and release.application == "shop"
    finally:
        ctx.prometheus.close()
        ctx.store.r.close()
