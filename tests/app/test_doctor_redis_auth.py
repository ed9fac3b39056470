"""`sluice doctor` warns when Redis lets in anyone without a password (issue 20, item 1): whoever reaches
that Redis can rewrite releases and fill the worker's queues. A loopback address, as in the local
demo, is reachable from this machine only and passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.cli.demo.stack import Process, start_redis
from app.config_file.loader import parse_config
from app.context import Context
from app.doctor.checks import Finding, check_redis, render
from tests.support.fakes import config_text

pytestmark = pytest.mark.integration
PASSWORD = "doctor-test-redis-password-0123456789"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    proc, url = start_redis(tmp_path)
    try:
        yield proc, url
    finally:
        proc.stop()


def auth_finding(url: str) -> Finding:
    ctx = Context(config=parse_config(config_text()), redis_url=url)
    try:
        findings = check_redis(ctx)
    finally:
        ctx.store.r.close()
    [found] = [f for f in findings if f.name == "redis auth"]
    assert PASSWORD not in render(findings, markup=False)
    return found


def test_redis_without_a_password_on_the_loopback_address_passes(own_redis: tuple[Process, str]) -> None:
    found = auth_finding(own_redis[1])  # redis://127.0.0.1:<port>/0, as the local demo runs it
    assert found.status == "pass" and "this machine only" in found.detail


def test_redis_without_a_password_at_a_name_warns(own_redis: tuple[Process, str]) -> None:
    url = own_redis[1].replace("127.0.0.1", "localhost")  # a host name: whoever DNS sends there gets in
    found = auth_finding(url)
    assert found.status == "warn", found
    assert "without a password" in found.detail and "requirepass" in found.fix and "REDIS_URL" in found.fix


def test_redis_that_asks_for_a_password_passes(own_redis: tuple[Process, str]) -> None:
    url = own_redis[1]
    redis.Redis.from_url(url).config_set("requirepass", PASSWORD)
    with_password = url.replace("redis://", f"redis://:{PASSWORD}@").replace("127.0.0.1", "localhost")
    found = auth_finding(with_password)
    assert found.status == "pass" and "refuses" in found.detail
