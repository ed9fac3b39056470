"""The hook interface: what every hook kind shares (its configuration base, the outcome of an
attempt, templating, secrets from the environment) and what a kind provides.

A hook kind is a module with its configuration model, `plan` (where the delivery goes and what
it adds to the payload, decided when the event happens) and `send` (one attempt), registered in
integrations/registry/hooks.py. Nothing here imports the application (app.context, app.release.hooks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field

from app.core.config.base import Duration, EnvName, LabelValue, Name, Strict
from app.core.models import CIContext
from integrations.kinds import Kind

# `rollback`: a `sluice rollback` put all traffic back on the previous version (its release is the rollback).
# `approval_requested`: a release waits for a manual gate (Slack: a message with Approve / Abort buttons).
HookEvent = Literal["started", "step_passed", "succeeded", "failed", "aborted", "rollback", "approval_requested"]
__all__ = ["EnvName", "HookEvent"]


@dataclass
class Outcome:
    """One delivery attempt. `retry_after` is set when the receiver asked us to wait."""

    ok: bool
    status: int | None
    excerpt: str
    retryable: bool
    retry_after: float | None = None
    error: str | None = None


class HookBase(Strict):
    """What every hook shares: when it fires, for which services, how hard it tries."""

    name: Name
    type: str
    on: list[HookEvent] = Field(min_length=1)
    services: list[LabelValue] | None = Field(None, description="Only for these services (default: all).")
    applications: list[Name] | None = None
    timeout: Duration = 10.0
    max_attempts: int = Field(6, ge=1, le=20)
    shadow: bool | None = Field(
        None,
        description="Fire for shadow releases (marked `shadow: true`)? Default: yes for notifications, no for "
        "hooks that act (CircleCI: approving a held job, cancelling a workflow or triggering a pipeline is an "
        "effect, which a shadow release must not have unless asked to).",
    )


PublicURL = Annotated[
    str | None,
    Field(pattern=r"^https?://", description="Sluice's public base URL for links (default: $SLUICE_PUBLIC_URL)."),
]


class HookEnv(Protocol):
    """What a sender may read of the process (app.context.Context has both)."""

    @property
    def config(self) -> Any: ...  # the SluiceConfig: e.g. config.circleci.api_url
    @property
    def store(self) -> Any: ...  # evaluations(release_id) for a message that lists the checks


Plan = tuple[str, dict[str, Any]]  # (target shown on the release: no secrets, what it adds to the payload)
Sender = Callable[[Any, dict[str, Any], HookEnv | None], tuple[Outcome, list[str]]]


def no_extra(hook: Any, fields: dict[str, Any], config: Any) -> Plan:
    return "", {}


@dataclass(frozen=True)
class HookKind(Kind):
    """A hook kind: `factory` is its sender, `plan(hook, fields, config) -> (target, extra payload)`."""

    plan: Callable[[Any, dict[str, Any], Any], Plan] = no_extra
    # The hook's call changes something outside (CircleCI), rather than telling someone: it does not
    # fire for a shadow release unless the hook says `shadow: true` (app/release/shadow.py).
    acts: bool = False

    def send(self, hook: Any, delivery: dict[str, Any], env: HookEnv | None) -> tuple[Outcome, list[str]]:
        return self.factory(hook, delivery, env)


# --- templates: `{field}` placeholders filled from the release ---------------------------------------

_FIELD_RE = re.compile(r"\{([a-z_.]+)\}")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def hook_fields() -> list[str]:
    """The `{field}` names a hook template may use (see app.release.hooks.release_fields)."""
    base = ["release_id", "application", "namespace", "service", "source_version", "target_version"]
    base += ["state", "policy", "step", "reason", "mode"]
    return base + [f"ci.{k}" for k in CIContext.model_fields]


def check_fields(value: Any, where: str) -> None:
    """Refuse a template that uses a field no release has (at configuration time)."""
    if isinstance(value, str):
        unknown = [p for p in _PLACEHOLDER_RE.findall(value) if p not in hook_fields()]
        if unknown:
            raise ValueError(
                f"{where}: unknown field(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"use {', '.join('{' + f + '}' for f in hook_fields())}"
            )


def render_payload(template: Any, fields: dict[str, Any]) -> Any:
    """Fill `{field}` placeholders inside the strings of a JSON-like structure.

    Values are substituted into strings of the structure, never into serialised JSON, so
    a field value cannot change the payload's shape. A string that is exactly one
    placeholder takes the field's own type (a number stays a number).
    """
    if isinstance(template, dict):
        return {k: render_payload(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [render_payload(v, fields) for v in template]
    if isinstance(template, str):
        whole = _FIELD_RE.fullmatch(template)
        if whole and whole.group(1) in fields:
            return fields[whole.group(1)]
        return _FIELD_RE.sub(lambda m: str(fields.get(m.group(1), m.group(0))), template)
    return template


# --- secrets --------------------------------------------------------------------------------------


class MissingSecret(Exception):
    """The environment variable that should hold a hook's secret is not set: not retryable."""


def env_secret(name: str | None, what: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise MissingSecret(f"environment variable {name} ({what}) is not set")
    return value


def required_secret(name: str, what: str) -> str:
    value = env_secret(name, what)
    assert value is not None
    return value


def is_shadow(release: dict[str, Any]) -> bool:
    """A delivery's release fields (app.release.hooks.release_fields) are of a shadow release: judged only,
    traffic not moved. Messages say "[shadow]" and carry `shadow: true`."""
    return release.get("mode") == "shadow"


def release_url(hook: Any, release_id: str) -> str | None:
    base = hook.public_url or os.environ.get("SLUICE_PUBLIC_URL")
    return f"{base.rstrip('/')}/api/v1/releases/{release_id}" if base else None
