"""Fixtures for the CI / on-call integration tests (CircleCI, Argo, hook senders): real Redis, the fake
Prometheus and router, and local CircleCI / Slack / PagerDuty servers (tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.context import Context
from tests.support.ci import (
    API_TOKEN,
    CIRCLE_TOKEN,
    INTAKE_TOKEN,
    PD_KEY,
    PUBLIC_URL,
    READ_TOKEN,
    WEBHOOK_SECRET,
    ci_config,
)
from tests.support.ci_fakes import FakeCircleCI, FakePagerDuty, FakeSlack
from tests.support.fakes import FakePrometheus, FakeRouter, shop_context


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    server = FakePagerDuty().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, slack: FakeSlack) -> pytest.MonkeyPatch:
    monkeypatch.setenv("CIRCLECI_TOKEN", CIRCLE_TOKEN)
    monkeypatch.setenv("CIRCLECI_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("SLUICE_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("SLUICE_INTAKE_TOKEN", INTAKE_TOKEN)
    monkeypatch.setenv("SLUICE_READ_TOKEN", READ_TOKEN)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", PD_KEY)
    monkeypatch.setenv("SLUICE_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.delenv("CIRCLECI_API_URL", raising=False)
    return monkeypatch


@pytest.fixture
def ctx(
    redis_url: str,
    prom: FakePrometheus,
    router: FakeRouter,
    circle: FakeCircleCI,
    pagerduty: FakePagerDuty,
    env: pytest.MonkeyPatch,
) -> Iterator[Context]:
    with shop_context(ci_config(circle, pagerduty), redis_url, prom, router) as context:
        yield context
