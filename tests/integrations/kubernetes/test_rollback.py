"""Instant rollback through a Kubernetes router (app/release/rollback.py) on the fake API server: after a
promotion, all traffic goes back on the previous version in the cluster's router object; with the
previous version's Deployment gone, there is nothing to roll back to (409) and nothing changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.context import Context
from app.release.control import control
from app.release.intake import start_release
from app.release.rollback import RollbackError, rollback
from tests.support.cluster import cluster_weights, setup_cluster
from tests.support.fake_apiserver import FakeApiServer
from tests.support.sim import NS, Sim, dep_name
from workers.tick import tick

pytestmark = pytest.mark.integration


def live(api: FakeApiServer, router: str) -> dict[str, int]:
    return {v: w for v, w in cluster_weights(api, router).items() if w}


def promote(ctx: Context, sim: Sim, version: str) -> None:
    sim.deployment("web", version)
    rel = start_release(ctx, "web", version).release
    tick(ctx, rel.id, 0)
    assert control(ctx, rel.id, "promote", actor="test").state == "succeeded"


@pytest.mark.parametrize("router", ["gateway-api", "ingress-nginx", "contour"])
def test_rollback_after_promotion_on_kubernetes(
    router: str, api: FakeApiServer, sim: Sim, make_ctx: Callable[..., Context]
) -> None:
    ctx = make_ctx(router, web_extra=", stable_version: 1.0.0")
    setup_cluster(sim, router)
    promote(ctx, sim, "1.1.0")
    assert live(api, router) == {"1.1.0": 100}

    done = rollback(ctx, "web", actor="alice", reason="checkout broken")
    assert (done.state, done.trigger, done.source_version, done.target_version) == (
        "succeeded",
        "rollback",
        "1.1.0",
        "1.0.0",
    )
    assert live(api, router) == {"1.0.0": 100}
    assert [k.version for k in ctx.store.known_bad("shop", "web")] == ["1.1.0"]

    # Promote another version, then take the previous one's Deployment away: nothing to roll back to.
    promote(ctx, sim, "1.2.0")
    api.delete("apps", "deployments", NS, dep_name("web", "1.0.0"))
    with pytest.raises(RollbackError) as gone:
        rollback(ctx, "web")
    assert gone.value.status == 409
    assert str(gone.value) == (
        "nothing to roll back to: 1.0.0 cannot take traffic (no Deployment of web 1.0.0 in namespace prod); "
        "is it still deployed?"
    )
    assert live(api, router) == {"1.2.0": 100}
