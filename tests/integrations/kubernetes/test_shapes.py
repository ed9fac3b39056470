"""Segments and mirrors on the Kubernetes routers, against the fake API server: the object written
has the right matches / filters (read back independently of Sluice's code), the weight split is
left alone, and everything Sluice added is gone at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.context import Context
from app.core.config.shapes import MirrorConfig, SegmentConfig
from integrations.kubernetes.shapes import ANNOTATION
from tests.support.cluster import cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import CONTOUR, GW, ING, NS, Sim

pytestmark = pytest.mark.integration

CHROME = SegmentConfig.model_validate({"header": {"name": "User-Agent", "regex": "Chrome"}})
COOKIE = SegmentConfig.model_validate({"cookie": {"name": "canary", "value": "always"}})
P = "nginx.ingress.kubernetes.io/"
BETA = SegmentConfig.model_validate({"header": {"name": "X-Beta", "value": "yes"}})


def _setup(router: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]) -> tuple[Any, Any]:
    ctx = make_ctx(router, web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, router)
    sim.deployment("web", "1.1.0")
    app = ctx.config.applications[0]
    return ctx.router(app), app.services[0]


def test_gateway_api_segment_rule_sits_before_the_weighted_rule_and_goes_at_the_end(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("gateway-api", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    original = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]

    router.set_segment(svc, "1.1.0", CHROME)

    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert len(rules) == 3
    assert rules[0] == original[0]  # another team's rule (/static) untouched
    assert rules[1] == {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"type": "RegularExpression", "name": "User-Agent", "value": ".*(?:Chrome).*"}],
            }
        ],
        "backendRefs": [{"name": "web-1-1-0", "port": 8080}],
    }
    assert rules[2] == original[1]  # the weighted rule, as it was
    assert router.get_weights(svc) == {"1.0.0": 100}  # the segment rule is not the split

    writes = len(api.writes)
    router.set_segment(svc, "1.1.0", CHROME)  # idempotent: read, nothing to write
    assert len(api.writes) == writes

    # The next step's weights rewrite the weighted rule only.
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert rules[1]["backendRefs"] == [{"name": "web-1-1-0", "port": 8080}]
    assert cluster_weights_without_segment(api) == {"web-1-0-0": 90, "web-1-1-0": 10}

    router.set_segment(svc, "1.1.0", None)
    route = api.get(*GW, NS, "web")
    assert route is not None
    assert len(route["spec"]["rules"]) == 2 and route["spec"]["rules"][0] == original[0]
    assert ANNOTATION not in route["metadata"]["annotations"]
    assert route["metadata"]["annotations"]["team"] == "shop"  # others' annotations survive


def cluster_weights_without_segment(api: FakeApiServer) -> dict[str, int]:
    refs = api.get(*GW, NS, "web")["spec"]["rules"][2]["backendRefs"]  # type: ignore[index]
    return {r["name"]: r.get("weight", 1) for r in refs}


def test_gateway_api_cookie_and_exact_header_segments(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("gateway-api", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_segment(svc, "1.1.0", COOKIE)
    [header] = api.get(*GW, NS, "web")["spec"]["rules"][1]["matches"][0]["headers"]  # type: ignore[index]
    assert header == {"type": "RegularExpression", "name": "Cookie", "value": ".*(?:(^|;\\s*)canary=always(;|$)).*"}

    router.set_segment(svc, "1.1.0", BETA)  # replaces the cookie segment
    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert len(rules) == 3
    assert rules[1]["matches"][0]["headers"] == [{"type": "Exact", "name": "X-Beta", "value": "yes"}]


def test_gateway_api_segment_rule_with_defaults_added_by_the_api_server_is_still_found(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    """A real API server fills CRD defaults into what Sluice wrote (a backendRef's weight, group,
    kind); the segment rule must still be recognised, kept out of the split, and removed."""
    router, svc = _setup("gateway-api", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_segment(svc, "1.1.0", CHROME)

    def defaults(route: dict[str, Any]) -> None:
        route["spec"]["rules"][1]["backendRefs"][0].update({"weight": 1, "group": "", "kind": "Service"})

    api.mutate(*GW, NS, "web", defaults)
    assert router.get_weights(svc) == {"1.0.0": 100}
    router.set_weights(svc, {"1.0.0": 50, "1.1.0": 50})
    router.set_segment(svc, "1.1.0", None)
    assert len(api.get(*GW, NS, "web")["spec"]["rules"]) == 2  # type: ignore[index]
    assert cluster_weights(api, "gateway-api") == {"1.0.0": 50, "1.1.0": 50}


def test_gateway_api_mirror_filter_on_the_weighted_rule(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("gateway-api", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_mirror(svc, "1.1.0", MirrorConfig(percent=10))

    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert len(rules) == 2
    assert rules[1]["filters"] == [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-1-1-0", "port": 8080}, "percent": 10}}
    ]
    assert cluster_weights(api, "gateway-api") == {"1.0.0": 100}  # users are served by stable only
    assert "filters" not in rules[0]

    router.set_mirror(svc, "1.1.0", None)
    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert "filters" not in rules[1]


def test_gateway_api_mirror_keeps_others_filters(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("gateway-api", api, sim, make_ctx)
    theirs = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Team", "value": "a"}]}}
    api.mutate(*GW, NS, "web", lambda r: r["spec"]["rules"][1].update({"filters": [theirs]}))
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_mirror(svc, "1.1.0", MirrorConfig(percent=25))
    filters = api.get(*GW, NS, "web")["spec"]["rules"][1]["filters"]  # type: ignore[index]
    assert filters[0] == theirs and filters[1]["requestMirror"]["percent"] == 25
    router.set_mirror(svc, "1.1.0", None)
    assert api.get(*GW, NS, "web")["spec"]["rules"][1]["filters"] == [theirs]  # type: ignore[index]


def test_contour_segment_route_has_the_header_condition(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("contour", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_segment(svc, "1.1.0", CHROME)
    routes = api.get(*CONTOUR, NS, "web")["spec"]["routes"]  # type: ignore[index]
    assert len(routes) == 3
    assert routes[1] == {
        "conditions": [{"prefix": "/"}, {"header": {"name": "User-Agent", "regex": ".*(?:Chrome).*"}}],
        "services": [{"name": "web-1-1-0", "port": 8080}],
        "timeoutPolicy": {"response": "5s"},  # the route's own settings apply to the segment too
    }
    assert router.get_weights(svc) == {"1.0.0": 100}
    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})
    assert cluster_weights_contour(api) == {"web-1-0-0": 90, "web-1-1-0": 10}
    router.set_segment(svc, "1.1.0", None)
    assert len(api.get(*CONTOUR, NS, "web")["spec"]["routes"]) == 2  # type: ignore[index]


def cluster_weights_contour(api: FakeApiServer) -> dict[str, int]:
    refs = api.get(*CONTOUR, NS, "web")["spec"]["routes"][2]["services"]  # type: ignore[index]
    return {r["name"]: r.get("weight", 1) for r in refs}


# --- Istio ---------------------------------------------------------------------------------------------

VS = ("networking.istio.io", "virtualservices")


def _istio(api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context], subsets: bool = False) -> tuple[Any, Any]:
    from tests.integrations.kubernetes.test_istio import setup

    ctx = make_ctx("istio, destinations: subsets" if subsets else "istio", web_extra=", stable_version: 1.0.0")
    setup(sim, api, subsets=subsets)
    app = ctx.config.applications[0]
    return ctx.router(app), app.services[0]


def test_istio_segment_route_before_the_weighted_route_then_removed(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _istio(api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    original = api.get(*VS, NS, "web")["spec"]["http"]  # type: ignore[index]

    router.set_segment(svc, "1.1.0", CHROME)

    http = api.get(*VS, NS, "web")["spec"]["http"]  # type: ignore[index]
    assert [r.get("name") for r in http] == ["static", None, "main"]
    assert http[1] == {
        "match": [{"uri": {"prefix": "/"}, "headers": {"user-agent": {"regex": ".*(?:Chrome).*"}}}],
        "retries": {"attempts": 2},  # the weighted route's settings apply to the segment too
        "route": [{"destination": {"host": "web-1-1-0", "port": {"number": 8080}}}],
    }
    assert http[2] == original[1]
    assert router.get_weights(svc) == {"1.0.0": 100}
    router.set_weights(svc, {"1.0.0": 80, "1.1.0": 20})
    http = api.get(*VS, NS, "web")["spec"]["http"]  # type: ignore[index]
    assert http[1]["route"] == [{"destination": {"host": "web-1-1-0", "port": {"number": 8080}}}]
    assert [d.get("weight") for d in http[2]["route"]] == [80, 20]

    router.set_segment(svc, "1.1.0", None)
    vs = api.get(*VS, NS, "web")
    assert vs is not None and [r.get("name") for r in vs["spec"]["http"]] == ["static", "main"]
    assert ANNOTATION not in vs["metadata"]["annotations"]


def test_istio_mirror_with_percentage(api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]) -> None:
    router, svc = _istio(api, sim, make_ctx, subsets=True)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_mirror(svc, "1.1.0", MirrorConfig(percent=10))

    main = api.get(*VS, NS, "web")["spec"]["http"][1]  # type: ignore[index]
    assert main["mirror"] == {"host": "web", "subset": "1-1-0"}
    assert main["mirrorPercentage"] == {"value": 10.0}
    subsets = api.get("networking.istio.io", "destinationrules", NS, "web")["spec"]["subsets"]  # type: ignore[index]
    assert {"name": "1-1-0", "labels": {"version": "1.1.0"}} in subsets  # the mirror's subset exists
    assert "mirror" not in api.get(*VS, NS, "web")["spec"]["http"][0]  # type: ignore[index]

    router.set_mirror(svc, "1.1.0", None)
    main = api.get(*VS, NS, "web")["spec"]["http"][1]  # type: ignore[index]
    assert "mirror" not in main and "mirrorPercentage" not in main


# --- ingress-nginx -------------------------------------------------------------------------------------


def canary_annotations(api: FakeApiServer) -> dict[str, str]:
    canary = api.get(*ING, NS, "web-sluice-canary")
    assert canary is not None
    return dict(canary["metadata"]["annotations"])


def test_ingress_nginx_header_pattern_on_the_canary_ingress(
    api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    router, svc = _setup("ingress-nginx", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    # (the canary Ingress exists already: Sluice moved the base onto 1.0.0's Service under its cover)

    router.set_segment(svc, "1.1.0", CHROME)

    ann = canary_annotations(api)
    assert ann[P + "canary"] == "true" and ann[P + "canary-weight"] == "0"
    assert ann[P + "canary-by-header"] == "User-Agent"
    assert ann[P + "canary-by-header-pattern"] == "Chrome"
    assert P + "canary-by-header-value" not in ann and P + "canary-by-cookie" not in ann
    canary = api.get(*ING, NS, "web-sluice-canary")
    backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]  # type: ignore[index]
    assert backend["name"] == "web-1-1-0"  # the canary carries the candidate
    assert cluster_weights(api, "ingress-nginx") == {"1.0.0": 100, "1.1.0": 0}

    router.set_segment(svc, "1.1.0", COOKIE)  # replaces the header segment
    ann = canary_annotations(api)
    assert ann[P + "canary-by-cookie"] == "canary"
    assert P + "canary-by-header" not in ann and P + "canary-by-header-pattern" not in ann

    router.set_weights(svc, {"1.0.0": 90, "1.1.0": 10})  # the weight for the rest
    assert canary_annotations(api)[P + "canary-weight"] == "10"
    assert canary_annotations(api)[P + "canary-by-cookie"] == "canary"

    router.set_segment(svc, "1.1.0", None)
    ann = canary_annotations(api)
    assert not [k for k in ann if k.startswith(P + "canary-by")]
    assert ann[P + "canary-weight"] == "10"


def test_ingress_nginx_exact_header_value(api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]) -> None:
    router, svc = _setup("ingress-nginx", api, sim, make_ctx)
    router.set_weights(svc, {"1.0.0": 100, "1.1.0": 0})
    router.set_segment(svc, "1.1.0", BETA)
    ann = canary_annotations(api)
    assert ann[P + "canary-by-header"] == "X-Beta" and ann[P + "canary-by-header-value"] == "yes"


# --- a release through the engine: the segment comes with its step and goes with it ------------------

SEGMENT_FIRST = "steps: [{{segment: {{header: {{name: User-Agent, regex: Chrome}}}}}}, {{weight: 50}}, {{weight: 100}}]"


@pytest.fixture
def segment_ctx(redis_url: str, prom: Any, kubeconfig: Any) -> Any:
    from app.config_file.loader import parse_config
    from tests.support.cluster import CONFIG

    text = CONFIG.replace("steps: [{{weight: 10}}, {{weight: 50}}, {{weight: 100}}]", SEGMENT_FIRST)
    assert text != CONFIG
    filled = text.format(
        kubeconfig=kubeconfig, router="gateway-api", web_extra=", stable_version: 1.0.0", cluster_extra=""
    )
    ctx = Context(
        config=parse_config(filled),
        redis_url=redis_url,
        prometheus_url=prom.url,
    )
    yield ctx
    ctx.prometheus.close()
    ctx.store.r.close()


def _tick(ctx: Context, rid: str) -> str:
    from workers.tick import tick

    rel = ctx.store.get(rid)
    assert rel is not None
    return str(tick(ctx, rid, rel.seq))


def test_a_release_applies_the_segment_at_its_step_and_removes_it_at_the_next(
    api: FakeApiServer, sim: Sim, segment_ctx: Context
) -> None:
    from app.release.intake import start_release

    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0")
    rid = start_release(segment_ctx, "web", "1.1.0").release.id
    assert _tick(segment_ctx, rid).startswith("start")

    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert len(rules) == 3 and rules[1]["backendRefs"] == [{"name": "web-1-1-0", "port": 8080}]
    assert cluster_weights_without_segment(api) == {"web-1-0-0": 100}
    rel = segment_ctx.store.get(rid)
    assert rel is not None and rel.weights_applied
    events = [e for e in segment_ctx.store.events(rid) if e.type == "weights_set"]
    assert "segment header User-Agent ~ /Chrome/ -> 1.1.0" in events[-1].message

    out = _tick(segment_ctx, rid)
    assert out.startswith("advance"), out
    rules = api.get(*GW, NS, "web")["spec"]["rules"]  # type: ignore[index]
    assert len(rules) == 2  # the segment rule went with its step
    assert cluster_weights(api, "gateway-api") == {"1.0.0": 50, "1.1.0": 50}


def test_aborting_during_a_segment_step_removes_the_segment(api: FakeApiServer, sim: Sim, segment_ctx: Context) -> None:
    from app.release.control import control
    from app.release.intake import start_release

    setup_cluster(sim, "gateway-api")
    sim.deployment("web", "1.1.0")
    rid = start_release(segment_ctx, "web", "1.1.0").release.id
    assert _tick(segment_ctx, rid).startswith("start")
    assert len(api.get(*GW, NS, "web")["spec"]["rules"]) == 3  # type: ignore[index]

    rel = control(segment_ctx, rid, "abort", reason="test")
    assert rel.state == "aborted"
    rel = segment_ctx.store.get(rid)
    assert rel is not None and rel.weights_applied
    route = api.get(*GW, NS, "web")
    assert route is not None and len(route["spec"]["rules"]) == 2
    assert ANNOTATION not in route["metadata"]["annotations"]
    assert cluster_weights(api, "gateway-api") == {"1.0.0": 100}
