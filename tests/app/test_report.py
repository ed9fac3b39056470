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


def _segment_release() -> dict:
    label = "segment header User-Agent ~ /Chrome/"
    return {
        **_release("insufficient"),
        "steps": [{"weight": 0, "segment": {"header": {"name": "User-Agent", "regex": "Chrome"}}}, {"weight": 100}],
        "step_labels": [label, "100%"],
        "step_label": label,
        "weights": {"1.0.0": 100, "1.1.0": 0},
    }


def test_a_segment_step_is_named_by_its_segment_not_0_percent() -> None:
    from rich.console import Console

    line = progress_line(_segment_release())
    assert "step 1/2 · segment header User-Agent ~ /Chrome/ -> 1.1.0" in line and "0% ->" not in line
    out = Console(width=200, record=True)
    out.print(checks_table(_segment_release()))
    text = out.export_text()
    assert "segment header User-Agent ~ /Chrome/" in text and " 0% " not in text


def _failed_release_with_long_evidence() -> dict:
    details = {
        "errors-vs-stable": "errors 31.2% vs stable 0.0% (n=212 vs 1,904): worse by more than 1 point, evidence 2e+05",
        "slow-vs-stable": "slow (over 47 ms): no evidence of being worse (n=212 vs 1,904)",
        "fast-responses": "fast-responses: the candidate is warming up (13s left; judge.warmup)",
        "traffic": "traffic: 12.3 requests/s, over the floor of 10",
    }
    evaluations = [
        {"name": name, "step": step, "value": 0.3123, "threshold": "<= stable + 0.01", "detail": detail,
         "verdict": "fail" if (name, step) == ("errors-vs-stable", 1) else "pass"}
        for step in (0, 1) for name, detail in details.items()
    ]  # fmt: skip
    return {
        **_segment_release(),
        "state": "failed",
        "steps": [{"weight": 0}, {"weight": 10}],
        "step_labels": ["segment header User-Agent ~ /Chrome/", "10%"],
        "evaluations": evaluations,
    }


def test_the_closing_table_fits_a_120_column_terminal_one_line_per_check() -> None:
    # Issue 23: `make demo`'s closing table wrapped every row over 5-8 lines and cut check names.
    from rich.console import Console

    out = Console(width=120, record=True)
    out.print(checks_table(_failed_release_with_long_evidence()))
    text = out.export_text()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 120
    rows = [line for line in lines if "-vs-stable" in line or "fast-responses" in line or "traffic" in line]
    assert any("errors-vs-stable" in row and "FAIL" in row for row in rows)  # the name is whole
    assert len(lines) <= 7 + 8 * 2, "\n".join(lines)  # 8 checks, each on at most two lines
    assert "segment header User-Agent ~ /Chrome/" in text
