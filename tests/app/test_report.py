"""`sluice watch` and `sluice status` output (app/cli/report.py) for every verdict the judge gives."""

from __future__ import annotations

from app.cli.report import checks_table, progress_line


def _release(verdict: str) -> dict:
    return {
        "state": "running",
        "service": "web",
        "source_version": "1.0.0",
        "target_version": "1.1.0",
        "current_step": 1,
        "steps": [{"weight": 10}, {"weight": 100}],
        "weights": {"1.0.0": 90, "1.1.0": 10},
        "reason": "waiting for evidence",
        "evaluations": [
            {"name": "errors-vs-stable", "step": 0, "value": None, "threshold": "<= stable + 0.25 points",
             "verdict": verdict},
        ],
    }  # fmt: skip


def test_every_verdict_is_shown_including_waiting_for_evidence() -> None:
    for verdict in ("pass", "fail", "no_data", "insufficient"):
        line = progress_line(_release(verdict))
        assert "errors-vs-stable" in line and "10% -> 1.1.0" in line
        assert checks_table(_release(verdict)).row_count == 1


def test_a_shadow_release_is_marked_and_shows_the_routers_weights() -> None:
    release = {**_release("pass"), "mode": "shadow", "observed_weights": {"1.0.0": 70, "1.1.0": 30}}
    line = progress_line(release)
    assert "[shadow]" in line and "30% -> 1.1.0 (traffic not moved by Sluice)" in line
    assert "shadow" not in progress_line(_release("pass"))
