"""The store on the test Redis (tests/conftest.py's `redis_url`), closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.store import Store


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = redis.Redis.from_url(redis_url)
    yield Store(client)
    client.close()
