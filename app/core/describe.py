"""Numbers and thresholds in words, as the decision, the CLI and the dashboard show them."""

from __future__ import annotations

from app.core.config.policy import CheckConfig, StepConfig


def format_value(value: float | None, missing: str = "no data") -> str:
    """A measured value as people read it: 4 significant digits, scientific only when huge or tiny."""
    if value is None:
        return missing
    if value == 0 or 0.001 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def describe_threshold(check: CheckConfig) -> str:
    parts = []
    if check.min is not None:
        parts.append(f">= {format_value(check.min)}")
    if check.max is not None:
        parts.append(f"<= {format_value(check.max)}")
    if check.max_over_stable is not None:
        parts.append(f"<= stable + {format_value(check.max_over_stable)}")
    return " and ".join(parts)


def step_share(step: StepConfig) -> str:
    """What a step sends to the candidate, as the dashboard, the CLI and reasons name it: "10%",
    or a segment or mirror step by its shape (its weight alone, often 0%, says nothing of it)."""
    if step.segment is not None:
        rest = f" + {step.weight}% of the rest" if step.weight else ""
        return f"segment {step.segment.describe()}{rest}"
    if step.mirror is not None:
        return f"mirror of {step.mirror.percent}% of stable's requests"
    return f"{step.weight}%"
