"""The Kubernetes tests' cluster: a configuration template for a router, the objects a release needs,
and the router's weights read back from the fake API server independently of Sluice's code."""

from __future__ import annotations

from integrations.kubernetes.ingress_nginx import CANARY, CANARY_WEIGHT
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import CONTOUR, GW, ING, NS, Sim

CONFIG = """
prometheus: {{url: "http://127.0.0.1:1", timeout: 2s}}
applications:
  - name: shop
    namespace: prod
    cluster: {{kubeconfig: "{kubeconfig}", context: fake, timeout: 3s{cluster_extra}}}
    router: {{type: {router}}}
    services:
      - {{name: web, port: 8080, policy: canary{web_extra}}}
      - {{name: api, port: 9000, policy: canary, stable_version: 2.0.0, max_restarts: 1}}
policies:
  - name: canary
    interval: 500ms
    window: 30s
    judge: {{warmup: 0s}}
    steps: [{{weight: 10}}, {{weight: 50}}, {{weight: 100}}]
    checks:
      - {{name: errors, type: error_rate, max: 0.05}}
"""


def version_of_services(api: FakeApiServer) -> dict[str, str]:
    return {
        s["metadata"]["name"]: s["metadata"]["labels"]["sluice.io/version"]
        for s in api.list("", "services", NS)
        if (s["metadata"].get("labels") or {}).get("sluice.io/version")
    }


def cluster_weights(api: FakeApiServer, router: str) -> dict[str, int]:
    """What the cluster's router object says now, read independently of Sluice's code."""
    names = version_of_services(api)
    if router == "gateway-api":
        refs = api.get(*GW, NS, "web")["spec"]["rules"][1]["backendRefs"]  # type: ignore[index]
        return {names.get(r["name"], r["name"]): r.get("weight", 1) for r in refs}
    if router == "contour":
        refs = api.get(*CONTOUR, NS, "web")["spec"]["routes"][1]["services"]  # type: ignore[index]
        return {names.get(r["name"], r["name"]): r.get("weight", 1) for r in refs}
    primary = api.get(*ING, NS, "web")
    assert primary is not None
    base = primary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    canary = api.get(*ING, NS, "web-sluice-canary")
    out = {names.get(base, base): 100}
    if canary:
        ann = canary["metadata"]["annotations"]
        cname = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        share = int(ann[CANARY_WEIGHT]) if ann.get(CANARY) == "true" else 0
        out[names.get(base, base)] -= share
        out[names.get(cname, cname)] = out.get(names.get(cname, cname), 0) + share
    return out


def setup_cluster(sim: Sim, router: str) -> None:
    sim.root_service("web")
    sim.deployment("web", "1.0.0", replicas=3)
    if router == "gateway-api":
        sim.httproute("web", "web")
    elif router == "contour":
        sim.httpproxy("web", "web")
    else:
        sim.ingress("web", "web")
