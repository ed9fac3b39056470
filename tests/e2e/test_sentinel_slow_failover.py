"""A Redis failover longer than a Redis call's retries, in the middle of a release (issue 12): sentinels
that call the master down only after 8 s (Sentinel's default is 30 s), so the web app answers 503 for a
while and the worker's RQ loop ends on a ConnectionError and is started again (workers/worker.py).
The release still finishes right, with every step, event and hook delivery once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.cli.demo.run import DemoStack, LoadGenerator
from tests.support.failover_release import failover_stack, good_release_across_a_failover
from tests.support.sentinel import SentinelStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, LoadGenerator, SentinelStack]]:
    """Sentinels that wait 8 s: longer than a call's retries (about 4.5 s), so web answers 503 and the
    worker's loop ends on a ConnectionError and is started again (workers/worker.py)."""
    yield from failover_stack(tmp_path_factory, 8000)


def test_a_release_finishes_right_across_a_failover_longer_than_the_retries(
    slow_stack: tuple[DemoStack, LoadGenerator, SentinelStack],
) -> None:
    readiness_in_the_window = good_release_across_a_failover(slow_stack)
    assert readiness_in_the_window == 503  # the web process saw the outage (and said so) and carried on
