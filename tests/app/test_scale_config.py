"""`scale:` on a service and `ready_timeout` on a policy: defaults, and the refusals with their reason."""

from __future__ import annotations

import pytest

from app.config_file.loader import ConfigError, parse_config

TEMPLATE = """
applications:
  - name: store
    {placement}
    services:
      - {{name: shop, policy: canary{service_extra}}}
policies:
  - name: canary
    {policy_extra}
    steps: [{{weight: 10}}, {{weight: 100}}]
"""
GATEWAY = "cluster: {in_cluster: true}\n    router: {type: gateway-api}"
HAPROXY = "router: {type: haproxy, socket: /tmp/haproxy.sock}"


def text(placement: str = GATEWAY, service_extra: str = "", policy_extra: str = "") -> str:
    return TEMPLATE.format(placement=placement, service_extra=service_extra, policy_extra=policy_extra)


def problems(source: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(source)
    return [f"{where}: {message}" for where, message in info.value.problems]


def test_defaults_ready_timeout_5m_and_no_scaling_unless_asked():
    config = parse_config(text())
    assert config.policies[0].ready_timeout == 300
    assert config.applications[0].services[0].scale is None


def test_scale_defaults_to_scaling_with_traffic_and_scaling_down_after_10_minutes():
    config = parse_config(text(service_extra=", scale: {}", policy_extra="ready_timeout: 90s"))
    scale = config.applications[0].services[0].scale
    assert scale is not None
    assert (scale.with_traffic, scale.scale_down, scale.scale_down_delay) == (True, "sluice", 600)
    assert config.policies[0].ready_timeout == 90
    ci = parse_config(text(service_extra=", scale: {scale_down: ci, scale_down_delay: 30s}"))
    assert ci.applications[0].services[0].scale.scale_down == "ci"  # type: ignore[union-attr]


def test_scale_on_haproxy_is_refused_naming_the_routers_that_can():
    [problem] = problems(text(placement=HAPROXY, service_extra=", scale: {}"))
    assert "`scale` (on shop) sizes Kubernetes Deployments and needs a Kubernetes router" in problem
    assert "gateway-api" in problem and "not haproxy" in problem


def test_an_unknown_scale_down_mode_is_refused_with_the_choices():
    [problem] = problems(text(service_extra=", scale: {scale_down: later}"))
    assert "scale_down" in problem and "'sluice', 'ci' or 'never'" in problem
