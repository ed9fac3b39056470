"""`sluice doctor`'s Sentinel check: which master the sentinels name, how many agree, which replicas
could take over and whether they persist. Only for a `redis+sentinel://` REDIS_URL (or REDIS_SENTINELS).

- fail: no sentinel answers, or none names a master that is up (Sluice cannot find Redis);
- warn: fewer sentinels agree than the quorum, or than are configured; no healthy replica (a failover
  has nowhere to go); a replica that persists nothing;
- pass otherwise.
"""

from __future__ import annotations

from app.doctor.findings import Finding
from app.store.connection import RedisUrlError
from app.store.sentinel_view import sentinel_view

NAME = "redis sentinel"


def check_sentinel(url: str) -> list[Finding]:
    try:
        view = sentinel_view(url)
    except RedisUrlError as exc:
        return [Finding(NAME, "fail", str(exc), "fix REDIS_URL (or REDIS_SENTINELS / REDIS_SENTINEL_MASTER)")]
    problems = "; ".join(view.problems)
    if view.master is None:
        return [
            Finding(
                NAME,
                "fail",
                f"no sentinel names a master for {view.master_name!r} that is up "
                f"({view.reached} of {view.sentinels} sentinels answered){': ' + problems if problems else ''}",
                "start the sentinels, check the master name (`SENTINEL MASTERS` on a sentinel), "
                "and that they monitor a running master",
            )
        ]
    replicas = ", ".join(f"{r} ({view.replica_persistence.get(r, 'unknown')})" for r in view.replicas) or "none"
    detail = (
        f"master {view.master_name!r} at {view.master}, named by {view.agreeing} of {view.sentinels} sentinels "
        f"(quorum {view.quorum}); replicas: {replicas}"
    )
    worries = []
    if view.quorum is not None and view.agreeing < view.quorum:
        worries.append(f"only {view.agreeing} sentinel(s) agree, fewer than the quorum {view.quorum}: no failover")
    elif view.agreeing < view.sentinels:
        worries.append(f"{view.sentinels - view.agreeing} sentinel(s) do not agree")
    if not view.replicas:
        worries.append("no healthy replica: a failover has nothing to promote")
    if bare := [r for r, how in view.replica_persistence.items() if how == "none"]:
        worries.append(f"replica(s) {', '.join(bare)} persist nothing (a promoted one forgets releases on restart)")
    if worries:
        return [
            Finding(
                NAME,
                "warn",
                detail + ". " + "; ".join(worries) + (f" ({problems})" if problems else ""),
                "run at least 3 sentinels (quorum 2) and one replica with `appendonly yes`; "
                "see docs/operations.md, 'Redis high availability'",
            )
        ]
    return [Finding(NAME, "pass", detail)]
