"""The registries of routers, hook kinds and metric providers: everything configurable comes from them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.config_file.loader import ConfigError, json_schema, parse_config
from app.core.models import Release
from app.release.hooks import plan_deliveries
from integrations.kinds import Registry
from integrations.registry.hooks import HOOKS, send
from integrations.registry.metrics import PROVIDERS, provider_for
from integrations.registry.routers import API_CALLS, ROUTERS
from tests.support.configs import GOOD

K8S = GOOD.replace(
    "router: {type: haproxy, socket: /tmp/haproxy.sock}",
    "router: {type: gateway-api, bogus: 1}\n    cluster: {in_cluster: true}",
)


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sluice.yaml")
    return info.value.problems


def test_a_union_tag_never_appears_in_an_error_path():
    [(where, msg)] = problems(K8S)
    assert where.endswith("applications.0.router.bogus") and "remove this key" in msg
    hook = "hooks:\n  - {name: chat, type: slack, bogus: 1}\n"
    [(where, _)] = problems(GOOD + hook)
    assert where.endswith("hooks.0.bogus")
    [(where, _)] = problems(GOOD + "metrics_provider: {type: prometheus, bogus: 1}\n")
    assert where.endswith("metrics_provider.bogus")
    # a key that happens to be named like a tag is kept
    [(where, _)] = problems(GOOD + "prometheus: {bogus: 1}\n")
    assert where.endswith("prometheus.bogus")


def test_an_unknown_type_names_the_registered_ones():
    [(where, msg)] = problems(GOOD.replace("type: haproxy", "type: envoy"))
    assert where.endswith("applications.0.router")
    for name in ROUTERS:
        assert repr(name) in msg or name in msg
    [(_, msg)] = problems(GOOD + "hooks:\n  - {name: chat, type: discord, on: [failed]}\n")
    assert "slack" in msg and "circleci_trigger_pipeline" in msg


def test_metrics_provider_or_prometheus_configures_the_provider():
    assert parse_config(GOOD).metrics_source.url == "http://127.0.0.1:9090"
    cfg = parse_config(GOOD + "metrics_provider: {type: prometheus, url: 'http://prom:9090'}\n")
    assert cfg.metrics_source.url == "http://prom:9090"
    assert parse_config(GOOD + "prometheus: {url: 'http://p:1'}\n").metrics_source.url == "http://p:1"
    [(_, msg)] = problems(GOOD + "prometheus: {url: 'http://p:1'}\nmetrics_provider: {type: prometheus}\n")
    assert "not both" in msg
    provider = provider_for(cfg.metrics_source, url="http://127.0.0.1:1")
    try:
        counts = provider.response_counts("shop", "1.0.0", "prod", 0.0, 60.0)
        assert counts.requests is None and counts.error and "cannot reach" in counts.error
    finally:
        provider.close()


def test_schema_and_listing_come_from_the_registries():
    schema = json.dumps(json.loads(json_schema()))
    for registry in (ROUTERS, HOOKS, PROVIDERS):
        for name in registry:
            assert f'"const": "{name}"' in schema or f'"enum": ["{name}"]' in schema, name
    res = CliRunner().invoke(main, ["kinds"])
    assert res.exit_code == 0
    for registry in (ROUTERS, HOOKS, PROVIDERS):
        for name, description in registry.listing().items():
            assert name in res.output and description[:20] in res.output


def test_kubernetes_routers_declare_their_calls_and_rbac_is_their_union():
    for name in ROUTERS:
        kind = ROUTERS[name]
        assert kind.needs_cluster == bool(kind.permissions), name
        assert kind.permissions <= API_CALLS
    assert ("gateway.networking.k8s.io", "httproutes", "patch") in ROUTERS["gateway-api"].permissions


def test_every_hook_kind_plans_and_an_unknown_type_cannot_be_sent():
    hooks = "\n".join(
        f"  - {{name: h{i}, type: {name}, on: [failed]"
        + (", url: 'https://example.com'" if name == "webhook" else "")
        + "}"
        for i, name in enumerate(HOOKS)
    )
    cfg = parse_config(GOOD + "hooks:\n" + hooks + "\n")
    release = Release(
        id="r1", application="shop", namespace="default", service="web", source_version="1", target_version="2",
        policy="canary", created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    planned = plan_deliveries(cfg, release, "failed", 0.0)
    assert [d.type for d in planned] == list(HOOKS)
    assert all(d.target for d in planned)
    with pytest.raises(KeyError, match="unknown hook type 'discord'"):
        send(cfg.hooks[0].model_copy(update={"type": "discord"}), planned[0].model_dump())


def test_a_registry_refuses_two_kinds_of_one_name():
    with pytest.raises(ValueError, match="two router kinds"):
        Registry("router", [ROUTERS["haproxy"], ROUTERS["haproxy"]])
