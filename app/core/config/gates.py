"""Gates: a go / no-go asked before a step's weights are applied, or before promotion.

A gate is either a webhook (another system answers: a change freeze, an incident tracker, a QA
suite) or a person (a manual approval from the API, the CLI, the dashboard or a Slack button).
The decision core (app/core/gate_rules.py) reads these models; the asking is done by app/release/gate_checks.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_serializer, field_validator

from app.core.config.base import Duration, EnvName, Name, Strict, no_duplicates
from app.core.redact import safe_url

MAX_CALL_SECONDS = 30.0


class WebhookGate(Strict):
    """A signed JSON POST (Standard Webhooks headers, as Sluice's webhooks) describing the release and
    the step: 2xx is go (unless the answer is `{"go": false}`), another 4xx is no-go (the release fails
    with the answer's reason), no answer / 408 / 429 / 5xx is "unreachable", retried with backoff."""

    type: Literal["webhook"]
    name: Name
    url: str = Field(pattern=r"^https?://", max_length=2048)
    secret_env: EnvName | None = Field(None, description="Environment variable holding the signing secret.")
    timeout: Duration = Field(5.0, description="How long one call may take (at most 30s: the tick waits for it).")
    on_unreachable: Literal["hold", "fail"] = Field(
        "hold",
        description="No answer (network error, timeout, 408/429/5xx): hold the release and retry with backoff "
        "(up to `unreachable_timeout`, then fail), or fail at once.",
    )
    unreachable_timeout: Duration = Field(
        600.0, description="With on_unreachable: hold, fail the release after the gate was unreachable this long."
    )

    @field_serializer("url", when_used="json")
    def _shown(self, url: str) -> str:
        """Whoever reads the configuration (GET /api/v1/policies, a release's steps) sees which gate,
        never its credentials: no user:password@, query or fragment. The model keeps the whole URL."""
        return safe_url(url)

    @field_validator("timeout")
    @classmethod
    def _short_enough(cls, v: float) -> float:
        if not 0 < v <= MAX_CALL_SECONDS:
            raise ValueError(
                f"a gate's timeout must be between 0 and {MAX_CALL_SECONDS:g}s: the release's tick waits for "
                "the answer (a slow gate is retried at later ticks; see unreachable_timeout)"
            )
        return v


class ManualGate(Strict):
    """A person's approval: the release waits ("waiting for approval: <name>") until someone approves
    (API, CLI, dashboard, Slack button) or aborts it."""

    type: Literal["manual"]
    name: Name
    timeout: Duration | None = Field(
        None, description="Fail the release when nobody approved within this long (default: wait forever)."
    )


Gate = Annotated[WebhookGate | ManualGate, Field(discriminator="type")]


def unique_gates(gates: list[WebhookGate | ManualGate]) -> list[WebhookGate | ManualGate]:
    no_duplicates([g.name for g in gates], "gate")
    return gates
