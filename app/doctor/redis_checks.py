"""`sluice doctor`'s Redis checks: reachable, and persisting what it is given (AOF or RDB); behind
Sentinel, the sentinels' view too (app/doctor/sentinel.py)."""

from __future__ import annotations

from app.context import Context
from app.doctor.findings import Finding
from app.doctor.redis_auth import check_redis_auth
from app.doctor.sentinel import check_sentinel
from app.store.connection import is_sentinel, shown


def check_redis(ctx: Context) -> list[Finding]:
    sentinel = check_sentinel(ctx.redis_url) if is_sentinel(ctx.redis_url) else []
    auth = [Finding(*f) for f in check_redis_auth(ctx.redis_url)]  # type: ignore[arg-type]
    return sentinel + _check_redis_server(ctx) + auth


def _check_redis_server(ctx: Context) -> list[Finding]:
    try:
        ctx.store.ping()
        settings = ctx.store.persistence()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return [
            Finding(
                "redis",
                "fail",
                f"cannot reach Redis at {_shown(ctx.redis_url)}: {type(exc).__name__}: {str(exc)[:200]}",
                "start Redis, or point REDIS_URL at it (redis://host:6379/0)",
            )
        ]
    aof = settings.get("appendonly", "no") == "yes"
    rdb = bool(settings.get("save", "").strip())
    if not (aof or rdb):
        return [
            Finding(
                "redis",
                "fail",
                f'Redis at {_shown(ctx.redis_url)} persists nothing (appendonly no, save ""): a restart '
                "forgets every release, including which version is stable",
                "turn on AOF: `CONFIG SET appendonly yes` and `appendonly yes` in redis.conf "
                "(or RDB snapshots: `save 60 1`)",
            )
        ]
    how = " and ".join(x for x, on in (("AOF", aof), (f"RDB (save {settings.get('save')})", rdb)) if on)
    return [Finding("redis", "pass", f"reachable, persistent ({how})")]


def _shown(url: str) -> str:
    return shown(url)  # never with its password (app/store/connection.py)
