"""Segments on a real HAProxy: requests with the header (or cookie) reach the candidate's server,
others do not. Real HTTP requests through HAProxy's frontend to two versions of the demo service
under gunicorn; the map is filled through the runtime API (no reload)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cli.demo.stack import HAProxyBackend, Process, start_gunicorn, start_haproxy
from app.core.config.services import ServiceConfig
from app.core.config.shapes import SegmentConfig
from integrations.haproxy.router import HAProxyRouter, HAProxyRouterConfig
from integrations.haproxy.segments import SegmentMap
from integrations.routers.interface import RouterError

pytestmark = pytest.mark.integration

SERVICE = "shop"
STABLE, CANDIDATE = "2.0.0", "2.1.0"


@dataclass
class Stack:
    router: HAProxyRouter
    service: ServiceConfig
    url: str
    maps: dict[str, str]  # "header" / "cookie" -> map path

    def versions(self, n: int = 12, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None):
        seen: Counter[str] = Counter()
        with requests.Session() as session:
            for _ in range(n):
                answer = session.get(self.url, headers=headers or {}, cookies=cookies or {}, timeout=5)
                assert answer.status_code == 200, answer.text
                seen[answer.json()["version"]] += 1
        return seen


def segment(**spec: object) -> SegmentConfig:
    return SegmentConfig.model_validate(spec)


CHROME = {"User-Agent": "Mozilla/5.0 Chrome/120.0 Safari/537.36"}
FIREFOX = {"User-Agent": "Mozilla/5.0 Firefox/121.0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("haproxy-segments")
    started: list[Process] = []
    maps = {"header": str(workdir / "shop-ua.map"), "cookie": str(workdir / "shop-canary.map")}
    segment_maps = [
        SegmentMap(backend=SERVICE, header="User-Agent", map=maps["header"]),
        SegmentMap(backend=SERVICE, cookie="canary", map=maps["cookie"]),
    ]
    try:
        ports: dict[str, int] = {}
        for version in (STABLE, CANDIDATE):
            proc, ports[version] = start_gunicorn(
                workdir,
                f"shop-{version}",
                "app.cli.demo.service:create_app()",
                env={"DEMO_SERVICE": SERVICE, "DEMO_VERSION": version, "DEMO_LATENCY_MS": "0"},
                threads=2,
            )
            started.append(proc)
        haproxy, sock, fe_ports = start_haproxy(
            workdir, [HAProxyBackend(SERVICE, servers=ports, weights={STABLE: 100})], segment_maps=segment_maps
        )
        started.append(haproxy)
        config = HAProxyRouterConfig(type="haproxy", socket=sock, timeout=2, segment_maps=segment_maps)
        router = HAProxyRouter(config)
        service = ServiceConfig(name=SERVICE, policy="canary")
        yield Stack(router, service, f"http://127.0.0.1:{fe_ports[SERVICE]}/", maps)
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture(autouse=True)
def no_segment(stack: Stack) -> Iterator[None]:
    stack.router.set_weights(stack.service, {STABLE: 100, CANDIDATE: 0})
    stack.router.set_segment(stack.service, CANDIDATE, None)
    yield
    stack.router.set_segment(stack.service, CANDIDATE, None)


def test_only_requests_with_the_header_reach_the_candidate(stack: Stack):
    assert stack.versions(headers=CHROME) == {STABLE: 12}  # no segment yet: weights decide

    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "regex": "Chrome"}))

    assert stack.router.get_weights(stack.service) == {STABLE: 100, CANDIDATE: 0}
    assert stack.versions(headers=CHROME) == {CANDIDATE: 12}
    assert stack.versions(headers=FIREFOX) == {STABLE: 12}
    assert stack.versions() == {STABLE: 12}  # no User-Agent at all
    assert stack.router.segments.get_segment(stack.service) == {
        stack.maps["header"]: [("Chrome", CANDIDATE)],
        stack.maps["cookie"]: [],
    }


def test_setting_the_same_segment_again_changes_nothing(stack: Stack):
    chrome = segment(header={"name": "user-agent", "regex": "Chrome"})  # header names ignore case
    stack.router.set_segment(stack.service, CANDIDATE, chrome)
    before = stack.router.runtime.run(f"show map {stack.maps['header']}")
    stack.router.set_segment(stack.service, CANDIDATE, chrome)
    assert stack.router.runtime.run(f"show map {stack.maps['header']}") == before  # same entry, same address
    assert stack.versions(headers=CHROME) == {CANDIDATE: 12}


def test_removing_the_segment_sends_everyone_back_by_weight(stack: Stack):
    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "regex": "Chrome"}))
    stack.router.set_segment(stack.service, CANDIDATE, None)
    assert stack.versions(headers=CHROME) == {STABLE: 12}
    assert stack.router.segments.get_segment(stack.service) == {stack.maps["header"]: [], stack.maps["cookie"]: []}


def test_cookie_segment_replaces_the_header_segment(stack: Stack):
    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "regex": "Chrome"}))
    stack.router.set_segment(stack.service, CANDIDATE, segment(cookie={"name": "canary", "value": "always"}))

    assert stack.versions(cookies={"canary": "always"}) == {CANDIDATE: 12}
    assert stack.versions(cookies={"canary": "always-not"}) == {STABLE: 12}  # the value matches exactly
    assert stack.versions(cookies={"canary": "never"}) == {STABLE: 12}
    assert stack.versions(headers=CHROME) == {STABLE: 12}  # the header segment is gone


def test_a_regex_with_spaces_and_escapes_reaches_haproxy_intact(stack: Stack):
    regex = r"Chrome/1\d\d\.0 Safari"
    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "regex": regex}))
    assert stack.router.segments.get_segment(stack.service)[stack.maps["header"]] == [(regex, CANDIDATE)]
    assert stack.versions(headers=CHROME) == {CANDIDATE: 12}
    assert stack.versions(headers={"User-Agent": "Chrome/99.0 Safari"}) == {STABLE: 12}


def test_exact_header_value(stack: Stack):
    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "value": "tester"}))
    assert stack.versions(headers={"User-Agent": "tester"}) == {CANDIDATE: 12}
    assert stack.versions(headers={"User-Agent": "tester2"}) == {STABLE: 12}


def test_segment_and_weight_for_the_rest(stack: Stack):
    stack.router.set_segment(stack.service, CANDIDATE, segment(cookie={"name": "canary", "value": "always"}))
    stack.router.set_weights(stack.service, {STABLE: 50, CANDIDATE: 50})
    assert stack.versions(20, cookies={"canary": "always"}) == {CANDIDATE: 20}
    rest = stack.versions(20)
    assert rest[STABLE] > 0 and rest[CANDIDATE] > 0


def test_a_header_without_a_map_is_refused_and_changes_nothing(stack: Stack):
    stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "User-Agent", "regex": "Chrome"}))
    with pytest.raises(RouterError) as err:
        stack.router.set_segment(stack.service, CANDIDATE, segment(header={"name": "X-Beta", "regex": "yes"}))
    assert not err.value.retryable
    assert "no segment map for header X-Beta" in str(err.value)
    assert stack.versions(headers=CHROME) == {CANDIDATE: 12}


def test_a_version_without_a_server_is_refused(stack: Stack):
    with pytest.raises(RouterError, match="no server named '9.9.9'"):
        stack.router.set_segment(stack.service, "9.9.9", segment(header={"name": "User-Agent", "regex": "Chrome"}))
    assert stack.router.segments.get_segment(stack.service)[stack.maps["header"]] == []
