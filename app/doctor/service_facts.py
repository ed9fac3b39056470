"""What `sluice doctor` checks a service against: its policies, and its stable version as far as known."""

from __future__ import annotations

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig


def service_policies(ctx: Context, svc: ServiceConfig) -> list[PolicyConfig]:
    names = [svc.policy] if isinstance(svc.policy, str) else [n for n in svc.policy.model_dump().values() if n]
    return [ctx.config.policy(n) for n in dict.fromkeys(names)]


def stable_version(ctx: Context, app: ApplicationConfig, svc: ServiceConfig) -> str | None:
    try:
        recorded = ctx.store.stable_version(app.name, svc.name)
    except Exception:  # noqa: BLE001 - Redis down is its own finding
        recorded = None
    return recorded or svc.stable_version
