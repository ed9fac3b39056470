"""Segment and mirror steps in the configuration: what validates, what is refused and how the
refusal reads; the router x shape support matrix in docs/shapes.md matches the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.config_file.loader import ConfigError, parse_config
from app.config_file.support import support_matrix
from integrations.registry.routers import ROUTERS

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
applications:
  - name: shop
    router: {router}
    {cluster}
    services:
      - {{name: web, policy: shaped}}
policies:
  - name: shaped
    steps:
      - {step}
      - {{weight: 100}}
"""
HAPROXY = (
    "{type: haproxy, socket: /run/haproxy.sock, segment_maps: [{backend: web, header: User-Agent, map: /etc/ua.map}]}"
)
CLUSTER = "cluster: {in_cluster: true}"


def config(step: str, router: str = HAPROXY) -> str:
    kube = not router.startswith("{type: haproxy")
    return CONFIG.format(router=router, cluster=CLUSTER if kube else "", step=step)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sluice.yaml")
    return [f"{where}: {msg}" for where, msg in info.value.problems]


def test_a_segment_step_parses_and_its_weight_defaults_to_0():
    cfg = parse_config(config("{segment: {header: {name: User-Agent, regex: Chrome}}, duration: 1m}"))
    step = cfg.policy("shaped").steps[0]
    assert step.weight == 0 and step.segment is not None and step.segment.header is not None
    assert step.segment.header.regex == "Chrome" and step.shapes == ["segment"]
    step = (
        parse_config(config("{segment: {header: {name: User-Agent, regex: Chrome}}, weight: 10}"))
        .policy("shaped")
        .steps[0]
    )
    assert step.shapes == ["weights", "segment"]


def test_haproxy_cannot_mirror_and_the_refusal_names_the_routers_that_can():
    [p] = problems(config("{mirror: {percent: 10}}"))
    assert "router haproxy cannot mirror traffic (policy 'shaped', step 1: mirror)" in p
    assert "SPOE" in p  # why
    assert p.endswith("routers that can: gateway-api, istio")


@pytest.mark.parametrize("router", ["traefik", "contour", "ingress-nginx"])
def test_kubernetes_routers_that_cannot_mirror_say_so(router: str):
    [p] = problems(config("{mirror: {percent: 10}}", f"{{type: {router}}}"))
    assert f"router {router} cannot mirror traffic" in p


def test_traefik_cannot_route_a_segment():
    [p] = problems(config("{segment: {cookie: {name: canary}}}", "{type: traefik}"))
    assert "router traefik cannot route a segment (policy 'shaped', step 1: segment)" in p
    assert "routers that can: haproxy, gateway-api, ingress-nginx, contour, istio" in p


@pytest.mark.parametrize("router", ["gateway-api", "istio"])
def test_routers_that_mirror_accept_a_mirror_step(router: str):
    step = (
        parse_config(config("{mirror: {percent: 10}, duration: 5m}", f"{{type: {router}}}")).policy("shaped").steps[0]
    )
    assert step.mirror is not None and step.mirror.percent == 10 and step.weight == 0


def test_haproxy_needs_a_segment_map_for_the_header():
    [p] = problems(config("{segment: {header: {name: X-Beta, value: 'yes'}}}"))
    assert "no segment map for header X-Beta = 'yes' on backend 'web'" in p
    assert "segment_maps" in p and "haproxy.cfg" in p
    # The header's case does not matter (HTTP header names are case-insensitive).
    parse_config(config("{segment: {header: {name: user-agent, regex: Chrome}}}"))


def test_ingress_nginx_cookie_segments_need_always():
    [p] = problems(config("{segment: {cookie: {name: canary, value: beta}}}", "{type: ingress-nginx}"))
    assert "only when the cookie's value is `always`" in p
    parse_config(config("{segment: {cookie: {name: canary, value: always}}}", "{type: ingress-nginx}"))


@pytest.mark.parametrize(
    ("regex", "says"),
    [
        ("(?=Chrome)", "lookahead"),
        ("(a)\\\\1", "backreferences"),
        ("a++", "possessive"),
        ("Chrome(", "does not compile"),
        ("x" * 257, "at most 256"),
        ("", "empty"),
    ],
)
def test_bad_regexes_are_refused_with_the_reason(regex: str, says: str):
    [p] = problems(config(f'{{segment: {{header: {{name: User-Agent, regex: "{regex}"}}}}}}'))
    assert says in p and "policies.0.steps.0.segment.header.regex" in p


@pytest.mark.parametrize(
    ("step", "says"),
    [
        ("{segment: {header: {name: User-Agent, regex: Chrome}, cookie: {name: c}}}", "exactly one of `header`"),
        ("{segment: {}}", "exactly one of `header`"),
        ("{segment: {header: {name: User-Agent}}}", "exactly one of `regex`"),
        ("{segment: {header: {name: 'User Agent', regex: x}}}", "is not a header name"),
        ("{segment: {cookie: {name: c, value: 'a;b'}}}", "is not a cookie value"),
        ("{mirror: {percent: 10}, weight: 5}", "its weight must be 0"),
        ("{mirror: {percent: 0}}", "greater than or equal to 1"),
        ("{mirror: {percent: 10}, segment: {cookie: {name: c}}}", "not both"),
    ],
)
def test_incoherent_steps_are_refused(step: str, says: str):
    assert any(says in p for p in problems(config(step, "{type: istio}"))), problems(config(step, "{type: istio}"))


def test_sluice_validate_prints_the_refusal(tmp_path: Path):
    path = tmp_path / "sluice.yaml"
    path.write_text(config("{mirror: {percent: 10}}"))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 1
    assert "router haproxy cannot mirror traffic" in res.output


def test_kinds_lists_each_routers_shapes():
    res = CliRunner().invoke(main, ["kinds"])
    assert res.exit_code == 0
    line = next(line for line in res.output.splitlines() if line.strip().startswith("haproxy"))
    assert "shapes: weights, segment" in line and "mirror" not in line


def test_the_support_matrix_in_the_docs_is_the_registrys():
    doc = (ROOT / "docs" / "shapes.md").read_text()
    regenerate = "python -c 'from app.config_file.support import support_matrix; print(support_matrix())'"
    assert support_matrix() in doc, f"the table in docs/shapes.md is stale: paste the output of {regenerate}"
    for name in ROUTERS:
        assert re.search(rf"^\| {re.escape(name)} \|", doc, re.M)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("shapes-*.yaml")))
def test_shape_examples_validate(example: Path):
    res = CliRunner().invoke(main, ["validate", str(example)])
    assert res.exit_code == 0, res.output


def test_there_are_shape_examples():
    assert len(list((ROOT / "examples").glob("shapes-*.yaml"))) >= 3


def test_a_plain_step_still_needs_its_weight():
    [p] = problems(config("{duration: 1m}"))
    assert "policies.0.steps.0" in p and "a step needs `weight`" in p


def test_haproxy_refuses_a_regex_its_runtime_api_would_split():
    [p] = problems(config('{segment: {header: {name: User-Agent, regex: "a;b"}}}'))
    assert "cannot take a regex with ';'" in p
    parse_config(config('{segment: {header: {name: User-Agent, regex: "a;b"}}}', "{type: istio}"))  # others can
