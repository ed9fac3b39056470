"""HAProxyRouter against a real HAProxy in front of real demo-service versions under gunicorn.

What is asserted is what a user would check: the weights HAProxy reports, and which version
actually answers requests sent through the HAProxy frontend.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cli.demo.stack import HAProxyBackend, Process, start_gunicorn, start_haproxy
from app.core.config.services import ServiceConfig
from integrations.haproxy.router import HAProxyRouter, HAProxyRouterConfig
from integrations.haproxy.runtime import RuntimeClient
from integrations.routers.interface import RouterError

pytestmark = pytest.mark.integration

SERVICE = "blueskygreenbuilds"
STABLE, CANDIDATE, SPARE = "1.0.370", "1.0.371", "1.0.372"  # SPARE is stopped by the health test


@dataclass
class Stack:
    router: HAProxyRouter
    runtime: RuntimeClient
    service: ServiceConfig
    url: str
    gunicorns: dict[str, Process]

    def versions_answering(self, n: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        with requests.Session() as session:
            for _ in range(n):
                answer = session.get(self.url, timeout=5)
                assert answer.status_code == 200, answer.text
                seen[answer.json()["version"]] += 1
        return seen


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("haproxy-router")
    started: list[Process] = []
    try:
        gunicorns: dict[str, Process] = {}
        ports: dict[str, int] = {}
        for version in (STABLE, CANDIDATE, SPARE):
            proc, port = start_gunicorn(
                workdir,
                f"demo-{version}",
                "app.cli.demo.service:create_app()",
                env={"DEMO_SERVICE": SERVICE, "DEMO_VERSION": version, "DEMO_LATENCY_MS": "0"},
                threads=2,
            )
            started.append(proc)
            gunicorns[version], ports[version] = proc, port
        haproxy, sock, fe_ports = start_haproxy(
            workdir, [HAProxyBackend(SERVICE, servers=ports, weights={STABLE: 100})]
        )
        started.append(haproxy)
        router = HAProxyRouter(HAProxyRouterConfig(type="haproxy", socket=sock, timeout=2))
        service = ServiceConfig(name=SERVICE, policy="canary")
        yield Stack(router, RuntimeClient(sock), service, f"http://127.0.0.1:{fe_ports[SERVICE]}/", gunicorns)
    finally:
        for proc in reversed(started):
            proc.stop()


def _wait_for_health(stack: Stack, version: str, healthy: bool, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    health = stack.router.health(stack.service, version)
    while health.healthy is not healthy and time.monotonic() < deadline:
        time.sleep(0.2)
        health = stack.router.health(stack.service, version)
    assert health.healthy is healthy, health.detail
    return health.detail


def test_canary_split_is_read_back_and_followed_by_traffic(stack: Stack):
    applied = stack.router.set_weights(stack.service, {STABLE: 90, CANDIDATE: 10})

    assert applied == {STABLE: 90, CANDIDATE: 10, SPARE: 0}
    assert stack.router.get_weights(stack.service) == {STABLE: 90, CANDIDATE: 10, SPARE: 0}
    assert stack.runtime.get_weight(SERVICE, STABLE) == 90
    assert stack.runtime.get_weight(SERVICE, CANDIDATE) == 10
    seen = stack.versions_answering(400)
    assert set(seen) <= {STABLE, CANDIDATE}
    assert 0.05 <= seen[CANDIDATE] / 400 <= 0.15, seen


def test_full_shift_and_back(stack: Stack):
    stack.router.set_weights(stack.service, {STABLE: 100, CANDIDATE: 0})
    assert stack.router.get_weights(stack.service) == {STABLE: 100, CANDIDATE: 0, SPARE: 0}
    assert stack.versions_answering(100) == Counter({STABLE: 100})

    stack.router.set_weights(stack.service, {CANDIDATE: 100})
    assert stack.versions_answering(50) == Counter({CANDIDATE: 50})

    # Idempotent: the same call again changes nothing and still reads back.
    assert stack.router.set_weights(stack.service, {CANDIDATE: 100}) == {STABLE: 0, CANDIDATE: 100, SPARE: 0}


def test_traffic_never_sees_an_empty_backend_while_weights_move(stack: Stack):
    # Weights are raised before others are lowered, so HAProxy never has every weight at 0
    # (it would answer 503) even mid-change.
    codes: Counter[int] = Counter()
    done = threading.Event()

    def send() -> None:
        with requests.Session() as session:
            while not done.is_set():
                codes[session.get(stack.url, timeout=5).status_code] += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        for _ in range(15):
            stack.router.set_weights(stack.service, {STABLE: 100})
            stack.router.set_weights(stack.service, {CANDIDATE: 100})
    finally:
        done.set()
        sender.join()
    assert set(codes) == {200}, codes


def test_version_without_server_changes_nothing(stack: Stack):
    stack.router.set_weights(stack.service, {STABLE: 90, CANDIDATE: 10})

    with pytest.raises(RouterError) as raised:
        stack.router.set_weights(stack.service, {STABLE: 50, "9.9.9": 50})

    assert raised.value.retryable is False
    assert "no server named '9.9.9'" in str(raised.value)
    assert "server 9.9.9 host:port weight 0" in str(raised.value)
    assert stack.router.get_weights(stack.service) == {STABLE: 90, CANDIDATE: 10, SPARE: 0}
    assert stack.runtime.get_weight(SERVICE, STABLE) == 90


def test_rollback_works_when_the_candidate_has_no_server(stack: Stack):
    stack.router.set_weights(stack.service, {STABLE: 90, CANDIDATE: 10})
    applied = stack.router.set_weights(stack.service, {STABLE: 100, "9.9.9": 0})
    assert applied == {STABLE: 100, CANDIDATE: 0, SPARE: 0}
    assert stack.router.get_weights(stack.service) == applied


def test_missing_backend_is_not_retryable(stack: Stack):
    other = ServiceConfig(name="checkout", policy="canary")
    with pytest.raises(RouterError, match="no backend named 'checkout'") as raised:
        stack.router.get_weights(other)
    assert raised.value.retryable is False


def test_bad_weights_are_refused_before_any_write(stack: Stack):
    stack.router.set_weights(stack.service, {STABLE: 90, CANDIDATE: 10})
    for weights in ({STABLE: 90, CANDIDATE: 20}, {STABLE: 101, CANDIDATE: -1}, {"a;shutdown": 100}):
        with pytest.raises(RouterError) as raised:
            stack.router.set_weights(stack.service, weights)
        assert raised.value.retryable is False
    assert stack.router.get_weights(stack.service) == {STABLE: 90, CANDIDATE: 10, SPARE: 0}


def test_get_weights_turns_haproxy_weights_into_percents(stack: Stack):
    for version in (STABLE, CANDIDATE, SPARE):
        stack.runtime.set_weight(SERVICE, version, 1)
    assert stack.router.get_weights(stack.service) == {STABLE: 34, CANDIDATE: 33, SPARE: 33}
    for version in (STABLE, CANDIDATE, SPARE):
        stack.runtime.set_weight(SERVICE, version, 0)
    assert stack.router.get_weights(stack.service) == {STABLE: 0, CANDIDATE: 0, SPARE: 0}
    stack.router.set_weights(stack.service, {STABLE: 100})
    assert stack.router.get_weights(stack.service) == {STABLE: 100, CANDIDATE: 0, SPARE: 0}


def test_runtime_lists_servers(stack: Stack):
    servers = stack.runtime.servers(SERVICE)
    assert list(servers) == [STABLE, CANDIDATE, SPARE]
    assert all(info["addr"].startswith("127.0.0.1:") for info in servers.values())
    assert servers[STABLE]["status"].startswith("UP")
    with pytest.raises(RouterError, match="no server named 'nope'") as raised:
        stack.runtime.get_weight(SERVICE, "nope")
    assert raised.value.retryable is False


@pytest.mark.parametrize(
    "backend, server",
    [
        (SERVICE, "1.0.371; shutdown"),
        (SERVICE, "1.0.371\nset weight x/y 0"),
        (f"{SERVICE}/1.0.370", "1.0.371"),
        ("", "1.0.371"),
        (SERVICE, "x" * 64),
        (SERVICE, "version 1"),
    ],
)
def test_bad_names_are_rejected_before_sending(stack: Stack, backend: str, server: str):
    # A client for a socket that does not exist: if anything were sent it would fail with a
    # (retryable) connection error, so a non-retryable "not allowed" proves nothing was sent.
    nowhere = RuntimeClient(str(Path(stack.runtime.address).with_name("missing.sock")), timeout=0.5)
    for client in (nowhere, stack.runtime):
        with pytest.raises(RouterError, match="not allowed") as raised:
            client.set_weight(backend, server, 0)
        assert raised.value.retryable is False
        with pytest.raises(RouterError, match="not allowed"):
            client.get_weight(backend, server)
    with pytest.raises(RouterError, match="one command"):
        stack.runtime.run("show info; shutdown frontends")


def test_unreachable_socket_is_retryable(tmp_path: Path):
    client = RuntimeClient(str(tmp_path / "no-haproxy.sock"), timeout=0.5)
    with pytest.raises(RouterError, match="cannot reach the HAProxy runtime API") as raised:
        client.servers(SERVICE)
    assert raised.value.retryable is True


def test_health_follows_the_server(stack: Stack):
    # Runs last: it stops SPARE's gunicorn.
    assert "UP" in _wait_for_health(stack, SPARE, healthy=True)
    assert stack.router.health(stack.service, STABLE).healthy is True

    stack.gunicorns[SPARE].stop()
    detail = _wait_for_health(stack, SPARE, healthy=False)

    assert "DOWN" in detail
    assert stack.router.health(stack.service, STABLE).healthy is True
    with pytest.raises(RouterError) as raised:
        stack.router.health(stack.service, "9.9.9")
    assert raised.value.retryable is False
