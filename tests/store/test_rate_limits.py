"""The receivers' sliding-window counter (app/store/rate_limits.py `hit`), on a real Redis, at chosen times:
what a sender is told (which limit, how long to wait) and that waiting that long is enough."""

from __future__ import annotations

import pytest
import redis

from app.store import connect
from app.store.rate_limits import Window, hit

pytestmark = pytest.mark.integration
MINUTE = Window(3, 60, "3 per 1 minute")
T0 = 6_000_000.0  # a window's start (a multiple of 60 s)


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    return connect(redis_url)


def test_a_full_window_refuses_and_says_how_long_to_wait(client: redis.Redis) -> None:
    for i in range(3):
        assert hit(client, "intake", "192.0.2.1", [MINUTE], T0 + 50 + i / 10) is None
    refused = hit(client, "intake", "192.0.2.1", [MINUTE], T0 + 50.5)
    assert refused is not None and refused.window == MINUTE
    # 10 s to the window's end, then the 3 requests weigh 3 x (60 - t) / 60: one more fits from t = 20 s.
    assert refused.retry_after == 30
    assert hit(client, "intake", "192.0.2.1", [MINUTE], T0 + 50.5 + 28.9) is not None
    assert hit(client, "intake", "192.0.2.1", [MINUTE], T0 + 50.5 + 30) is None
    assert hit(client, "intake", "192.0.2.2", [MINUTE], T0 + 50.5) is None  # another address: its own count


def test_refused_requests_are_not_counted(client: redis.Redis) -> None:
    for _ in range(3):
        assert hit(client, "intake", "a", [MINUTE], T0 + 1) is None
    for _ in range(50):
        assert hit(client, "intake", "a", [MINUTE], T0 + 2) is not None
    assert hit(client, "intake", "a", [MINUTE], T0 + 120) is None  # two windows on: all forgotten


def test_no_burst_of_twice_the_limit_across_a_window_boundary(client: redis.Redis) -> None:
    """A fixed window would take 3 at 59.9 s and 3 more at 60.1 s; the sliding one takes the first 3 only."""
    taken = [hit(client, "intake", "b", [MINUTE], T0 + 59.9) is None for _ in range(3)]
    taken += [hit(client, "intake", "b", [MINUTE], T0 + 60.1) is None for _ in range(3)]
    assert taken == [True, True, True, False, False, False]


def test_every_limit_is_checked_and_none_is_counted_when_one_is_full(client: redis.Redis) -> None:
    second = Window(2, 1, "2 per 1 second")
    assert hit(client, "intake", "c", [second, MINUTE], T0 + 0.1) is None
    assert hit(client, "intake", "c", [second, MINUTE], T0 + 0.2) is None
    refused = hit(client, "intake", "c", [second, MINUTE], T0 + 0.3)
    assert refused is not None and refused.window == second and refused.retry_after == 1
    assert hit(client, "intake", "c", [second, MINUTE], T0 + 2.5) is None  # the minute's 3rd: not used by the refusal
    refused = hit(client, "intake", "c", [second, MINUTE], T0 + 4.5)
    assert refused is not None and refused.window == MINUTE


def test_counters_expire(client: redis.Redis) -> None:
    hit(client, "intake", "d", [MINUTE], T0 + 1)
    ttls = [client.pttl(k) for k in client.keys("sluice:ratelimit:intake:*")]
    assert ttls and all(0 < t <= 120_000 for t in ttls)
