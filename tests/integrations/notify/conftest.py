"""The releases these tests start pass on their counts unless a test programs a failing candidate."""

from __future__ import annotations

import pytest

from tests.support.ci import serve_api_releases
from tests.support.fakes import FakePrometheus


@pytest.fixture
def prom(prom: FakePrometheus) -> FakePrometheus:
    return serve_api_releases(prom)
