"""The talk's story, whole: CI applies a new version's Deployment (labels `app` and `version`, its CircleCI
context in annotations) next to the running one; `sluice watcher` finds it; `sluice worker` puts 10% of
the traffic on it through the cluster's Gateway API HTTPRoute and judges it from a real Prometheus
scraping the real version processes; a good version is promoted (the held CircleCI approval job is
approved, the old version's cleanup pipeline triggered), a bad one rolled back (its cleanup pipeline
triggered, the held job left alone); Slack is told either way.

Real: Redis, Prometheus, the versions under gunicorn, Sluice's worker (scheduler + RQ) and watcher
processes. Local fakes that speak the real protocols: the Kubernetes API (schemas and deploy/rbac.yaml
checked; the watcher and the worker each call it as their own service account), CircleCI and Slack.
The Gateway's data plane is tests/support/gateway_load.py: client traffic split by the HTTPRoute's
weights as the API server holds them, re-read every second.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config_file.loader import parse_config
from app.context import Context
from app.core.models import Release
from integrations.registry.routers import API_CALLS
from tests.support.ci import CIRCLE_TOKEN
from tests.support.ci_fakes import FakeCircleCI, FakeSlack
from tests.support.fake_apiserver import FakeApiServer
from tests.support.gateway_load import GW, GatewayLoad, version_shares
from tests.support.sim import NS, Sim, wait_for
from tests.support.talk_stack import APPROVAL_JOB, SERVICE, Versions, logs, running_sluice, running_versions

pytestmark = pytest.mark.e2e
STABLE, GOOD, BAD = "1.0.0", "1.1.0", "1.2.0"
SLUG = "gh/acme/shop"
# Prometheus scrapes every second; under load a scrape can be late or missed. Counts taken this long
# after a change of split are surely from after it.
SCRAPED = 2.5


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    bad = {"SCN_ERROR_RATE": "0.3"}  # 30% of its answers are 500s
    with running_versions(tmp_path_factory.mktemp("versions"), {STABLE: {}, GOOD: {}, BAD: bad}) as stack:
        yield stack


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer(bookmark_interval=0.3).start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.calls - API_CALLS, f"calls outside API_CALLS: {server.calls - API_CALLS}"
    assert not server.warnings, f"Sluice wrote fields the API server does not know: {server.warnings}"


class Story:
    """One candidate's release, from `kubectl apply` to its hooks delivered."""

    def __init__(self, api: FakeApiServer, circle: FakeCircleCI, versions: Versions, workdir: Path):
        self.api, self.circle, self.versions, self.workdir = api, circle, versions, workdir
        self.sim = Sim(api)
        self.workflow_id = str(uuid.uuid4())

    def cluster(self, root_selector: str) -> None:
        """What runs before the story starts: the stable version behind the route, through the Service
        the HTTPRoute names. `root_selector`: "stable" (`app` and `version`: the stable version's pods
        only) or "app-wide" (`app` only: every version's ready pods, a new one's as soon as it is ready)."""
        selector = {"app": SERVICE, "version": STABLE} if root_selector == "stable" else {"app": SERVICE}
        self.api.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": NS},
                "spec": {"selector": selector, "ports": [{"port": 8080}]},
            }
        )
        self.sim.deployment(SERVICE, STABLE, replicas=3)
        self.sim.httproute(SERVICE, SERVICE)
        # CircleCI's workflow that deployed the candidate, its approval job held for Sluice.
        self.circle.add_workflow(
            self.workflow_id,
            [("build", "build", "success"), ("deploy-canary", "build", "success"),
             (APPROVAL_JOB, "approval", "on_hold"), ("publish", "build", "blocked")],
        )  # fmt: skip

    def annotations(self) -> dict[str, str]:
        """What the CircleCI job writes on the Deployment it applies (the orb's `kubectl annotate`)."""
        return {
            "circleci.com/workflow-id": self.workflow_id,
            "circleci.com/pipeline-id": str(uuid.uuid4()),
            "circleci.com/pipeline-number": "371",
            "circleci.com/build-number": "1234",
            "circleci.com/build-url": "https://app.circleci.com/pipelines/gh/acme/shop/371",
            "circleci.com/job-name": "deploy-canary",
            "circleci.com/project-slug": SLUG,
        }

    def release(self, version: str, store: Context, gateway: GatewayLoad) -> Release:
        wait_for(lambda: ("apps", "deployments", "watch") in self.api.calls, 60, "the watcher to watch Deployments")
        wait_for(lambda: gateway.shares == {STABLE: 1.0}, 10, "the Gateway to send all traffic to stable")
        time.sleep(2)  # a few seconds of stable traffic in Prometheus before the candidate comes
        self.sim.deployment(SERVICE, version, replicas=2, available=False, annotations=self.annotations())
        self.sim.make_available(SERVICE, version)  # its pods are ready: the watcher's cue
        started = wait_for(lambda: store.store.list_releases()[0], 30, "the watcher to start a release")
        assert len(started) == 1, started
        return settled(store, started[0].id)


def settled(ctx: Context, rid: str, timeout: float = 90.0) -> Release:
    """The release has ended, its weights are applied and every hook delivery is done."""

    def done() -> Release | None:
        rel = ctx.store.get(rid)
        if rel is None or not (rel.terminal and rel.weights_applied):
            return None
        return rel if all(d.state != "pending" for d in ctx.store.deliveries(rel.hooks)) else None

    rel: Release = wait_for(done, timeout, f"release {rid} to settle")
    return rel


@pytest.fixture
def story(
    request: pytest.FixtureRequest,
    api: FakeApiServer,
    circle: FakeCircleCI,
    slack: FakeSlack,
    versions: Versions,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[tuple[Story, Context, GatewayLoad]]:
    told = Story(api, circle, versions, tmp_path)
    told.cluster(getattr(request, "param", "stable"))
    with running_sluice(tmp_path, api, redis_url, versions.prometheus_url, circle, slack) as configs:
        observer = Context(
            config=parse_config(configs["worker"].read_text()),
            redis_url=redis_url,
            prometheus_url=versions.prometheus_url,
        )
        try:
            with GatewayLoad(api, NS, SERVICE, versions.ports, rate=50) as gateway:
                yield told, observer, gateway
        except BaseException:
            print(logs(tmp_path))
            raise
        finally:
            observer.prometheus.close()
            observer.store.r.close()


def route_weights(api: FakeApiServer) -> dict[str, int]:
    """The HTTPRoute's backends for `/`, read back: version (from the Service's selector) -> weight."""
    route = api.get(*GW, NS, SERVICE)
    assert route is not None
    out = {}
    for ref in route["spec"]["rules"][1]["backendRefs"]:
        service = api.get("", "services", NS, ref["name"])
        assert service is not None, ref
        out[service["spec"]["selector"].get("version", "all")] = ref.get("weight", 1)
    return out


def pipelines(circle: FakeCircleCI) -> list[dict[str, Any]]:
    return [
        {"path": r.path, "body": json.loads(r.body)}
        for r in circle.requests
        if r.method == "POST" and r.path.endswith("/pipeline")
    ]


def test_a_good_version_gets_ten_percent_then_everything_and_ci_goes_on(
    story: tuple[Story, Context, GatewayLoad], circle: FakeCircleCI, slack: FakeSlack, versions: Versions
) -> None:
    told, observer, gateway = story
    rel = told.release(GOOD, observer, gateway)
    assert rel.state == "succeeded", (rel.reason, logs(told.workdir))
    assert (rel.trigger, rel.source_version, rel.target_version) == ("kubernetes", STABLE, GOOD)
    assert rel.ci.workflow_id == told.workflow_id and rel.ci.project_slug == SLUG

    # What the Gateway did: all to stable, 10/90 (nothing to the candidate before), then all to it.
    assert [shares for _, shares in gateway.changes] == [{STABLE: 1.0}, {STABLE: 0.9, GOOD: 0.1}, {GOOD: 1.0}]
    # The canary: 10% of the requests reached the new version, as Prometheus counted them.
    canary_from, canary_to = gateway.period({STABLE: 0.9, GOOD: 0.1})
    assert canary_to - canary_from >= 6, gateway.changes
    counted = versions.served_between(canary_from + SCRAPED, canary_to)
    share = counted.get(GOOD, 0) / (counted.get(GOOD, 0) + counted.get(STABLE, 0))
    assert 0.08 <= share <= 0.12 and counted[GOOD] >= 20, counted
    assert counted.get(BAD, 0) == 0
    seen = gateway.served(canary_from, canary_to)  # what the clients saw: the same split
    assert abs(seen[GOOD] / (seen[GOOD] + seen[STABLE]) - 0.1) < 0.01, seen
    # Then all of it, and the route says so.
    assert route_weights(told.api) == {STABLE: 0, GOOD: 100}  # read back from the API server
    assert version_shares(told.api, NS, SERVICE) == {GOOD: 1.0}
    after = gateway.period({GOOD: 1.0})[0]
    time.sleep(SCRAPED + 2)
    promoted = versions.served_between(after + SCRAPED, time.time())
    assert promoted.get(GOOD, 0) >= 40 and promoted.get(STABLE, 0) == 0, promoted
    assert observer.store.stable_version("shop", SERVICE) == GOOD

    # CircleCI: the held approval job approved; the old version's cleanup pipeline triggered.
    assert circle.approved == [(told.workflow_id, APPROVAL_JOB)]
    assert pipelines(circle) == [
        {
            "path": f"/api/v2/project/{SLUG}/pipeline",
            "body": {"branch": "main", "parameters": {"cleanup": True, "version": STABLE}},
        }
    ]
    assert all(r.headers["Circle-Token"] == CIRCLE_TOKEN for r in circle.requests)
    # Slack: told once.
    assert len(slack.messages) == 1 and f"{SERVICE} {GOOD} promoted" in slack.messages[0]["text"], slack.messages


def test_a_bad_version_is_rolled_back_and_ci_cleans_it_up(
    story: tuple[Story, Context, GatewayLoad], circle: FakeCircleCI, slack: FakeSlack, versions: Versions
) -> None:
    told, observer, gateway = story
    rel = told.release(BAD, observer, gateway)
    assert rel.state == "failed", (rel.reason, logs(told.workdir))
    assert rel.reason is not None and "errors" in rel.reason, rel.reason
    assert (rel.trigger, rel.source_version, rel.target_version) == ("kubernetes", STABLE, BAD)

    # The Gateway reads the route once a second: let it follow the rollback before reading its history.
    wait_for(lambda: gateway.shares == {STABLE: 1.0}, 10, "the Gateway to follow the rollback")
    assert [shares for _, shares in gateway.changes] == [{STABLE: 1.0}, {STABLE: 0.9, BAD: 0.1}, {STABLE: 1.0}]
    # It got its 10% (and answered 30% of it with 500s, as Prometheus counted), then nothing.
    canary_from, canary_to = gateway.period({STABLE: 0.9, BAD: 0.1})
    assert canary_to - canary_from < 8, gateway.changes  # rolled back before the step's 8 s were up
    failures = versions.counts(time.time()).get((BAD, "500"), 0) - versions.counts(canary_from).get((BAD, "500"), 0)
    assert failures >= 2, versions.counts(time.time())
    assert route_weights(told.api) == {STABLE: 100, BAD: 0}  # read back from the API server
    assert version_shares(told.api, NS, SERVICE) == {STABLE: 1.0}
    time.sleep(SCRAPED + 2)
    after = versions.served_between(canary_to + SCRAPED, time.time())
    assert after.get(BAD, 0) == 0 and after.get(STABLE, 0) >= 40, (after, canary_to, versions.samples(BAD))
    assert told.api.get("apps", "deployments", NS, "web-1-2-0") is not None  # left for CI to clean up
    assert observer.store.stable_version("shop", SERVICE) is None  # still 1.0.0, as Sluice found it

    # CircleCI: the failed version's cleanup pipeline triggered; the held job left alone.
    assert pipelines(circle) == [
        {
            "path": f"/api/v2/project/{SLUG}/pipeline",
            "body": {"branch": "main", "parameters": {"cleanup": True, "version": BAD}},
        }
    ]
    assert circle.approved == []
    assert [j["status"] for j in circle.workflows[told.workflow_id] if j["type"] == "approval"] == ["on_hold"]
    # Slack: told once, with the failing check.
    assert len(slack.messages) == 1, slack.messages
    assert f"{SERVICE} {BAD} failed and was rolled back" in slack.messages[0]["text"]
    assert "errors" in str(slack.messages[0]["blocks"])


@pytest.mark.parametrize("story", ["app-wide"], indirect=True)
def test_behind_an_app_wide_service_a_new_version_gets_at_most_its_pods_share_until_the_first_step(
    story: tuple[Story, Context, GatewayLoad],
) -> None:
    """The known gap, bounded: when the HTTPRoute names a Service selecting every version (`app` only),
    a new version's ready pods get their share of it (2 of 5 pods: 40%) from the moment they are ready
    until Sluice's first step rewrites the route (docs/kubernetes.md tells users to select the stable
    version). Whether the Gateway's once-a-second read sees that window depends on how soon the
    first tick comes (this was a strict xfail, and passed once the worker stopped backing off while
    idle): what holds either way is that the new version never gets more than its pods' share, and
    that the first step's split replaces it."""
    told, _observer, gateway = story
    wait_for(lambda: ("apps", "deployments", "watch") in told.api.calls, 60, "the watcher to watch Deployments")
    wait_for(lambda: gateway.shares == {STABLE: 1.0}, 10, "the Gateway to send all traffic to stable")
    told.sim.deployment(SERVICE, GOOD, replicas=2, available=False, annotations=told.annotations())
    told.sim.make_available(SERVICE, GOOD)
    first_step = {STABLE: 0.9, GOOD: 0.1}
    wait_for(lambda: first_step in [shares for _, shares in gateway.changes], 30, "Sluice's first step")
    splits = [shares for _, shares in gateway.changes]
    assert splits[0] == {STABLE: 1.0}, splits
    before = splits[1 : splits.index(first_step)]
    assert all(set(shares) <= {STABLE, GOOD} and shares.get(GOOD, 0.0) <= 0.4 + 1e-9 for shares in before), splits
