"""Shared fixtures: a real redis-server per test session (a fresh database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.cli.demo.stack import start_redis
from tests.support.ci import CIRCLE_TOKEN
from tests.support.ci_fakes import FakeCircleCI, FakeSlack
from tests.support.fakes import FakePrometheus, FakeRouter, WebhookReceiver

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A real Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    yield redis_server


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    """Prometheus's query API over real HTTP, answering the values a test programs."""
    server = FakePrometheus().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def router() -> FakeRouter:
    """An in-memory implementation of Sluice's Router interface that records every change."""
    return FakeRouter()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver over real HTTP that records requests and answers as told."""
    server = WebhookReceiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def circle() -> Iterator[FakeCircleCI]:
    """CircleCI's API over real HTTP (tests/support/ci_fakes.py), with its token."""
    server = FakeCircleCI(CIRCLE_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A Slack incoming webhook over real HTTP that records what it was sent."""
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()
