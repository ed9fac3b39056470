"""app/core/copies.py: the tick's copy of a release equals model_copy(deep=True) and shares nothing
that can change with the original (a decided release must not alter the one it came from)."""

from __future__ import annotations

from app.core.copies import deep_copy
from app.core.models import CarriedHistogram, JudgeState, Release


def release() -> Release:
    judge = JudgeState(
        first_traffic_at=5.0,
        evidence={"errors": 1.5},
        baseline={"errors": (1.0, 200.0)},
        histograms={"stable": CarriedHistogram(finite=[(0.1, 3.0), (0.5, 9.0)], total=10.0)},
        router_mark={"web": {"1.0.0": [1, 2]}},
    )
    return Release(
        id="r-1", application="a", namespace="n", service="web", source_version="1.0.0", target_version="1.1.0",
        policy="p", created_at=1.0, updated_at=2.0, desired_weights={"1.0.0": 90, "1.1.0": 10}, hooks=["h1"],
        judge=judge,
    )  # fmt: skip


def test_the_copy_equals_the_deep_copy_with_the_same_fields_set() -> None:
    original = release()
    copied = deep_copy(original)
    assert copied == original.model_copy(deep=True)
    assert copied.model_fields_set == original.model_fields_set
    assert copied.model_dump_json() == original.model_dump_json()


def test_changing_the_copy_leaves_the_original_as_it_was() -> None:
    original = release()
    before = original.model_dump_json()
    copied = deep_copy(original)
    copied.desired_weights["1.1.0"] = 50
    copied.hooks.append("h2")
    copied.judge.evidence["errors"] = 9.0
    copied.judge.baseline["4xx"] = (0.0, 1.0)
    copied.judge.histograms["stable"].finite.append((1.0, 10.0))
    copied.judge.router_mark["web"]["1.0.0"].append(3)  # type: ignore[index]
    copied.ci.job_name = "other"
    assert original.model_dump_json() == before
