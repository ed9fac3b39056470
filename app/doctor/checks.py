"""`sluice doctor`: the configuration checked against the live world, before the first release.

Each check gives `pass`, `warn` (works, but something will surprise you) or `fail` (a release would
not work as configured), with what was found and how to fix it. Nothing here changes anything: Redis
is asked for its settings, Prometheus for series, the router read, Kubernetes asked whether Sluice
*may* do what it will do (SelfSubjectAccessReview), CircleCI who the token belongs to (`GET /me`).
The CLI prints the checklist (exit 0 only without a failure), the API answers it as JSON, and
`sluice demo` runs it before its first release.
"""

from __future__ import annotations

import time

from app.context import Context
from app.doctor.findings import Finding, passed, render
from app.doctor.hook_checks import check_hooks, check_unmatched_deploys
from app.doctor.kubernetes_checks import check_permissions, check_router
from app.doctor.prometheus_checks import check_prometheus, check_service_metrics
from app.doctor.redis_checks import check_redis

# The CLI, the API and tests import these from here: `checks` is the doctor's front door.
__all__ = ["Finding", "check_unmatched_deploys", "passed", "render", "run_doctor"]


def run_doctor(ctx: Context, now: float | None = None) -> list[Finding]:
    now = time.time() if now is None else now
    out: list[Finding] = []
    out += check_redis(ctx)
    prom_ok = True
    out += check_prometheus(ctx, now)
    prom_ok = out[-1].status != "fail"
    for app in ctx.config.applications:
        for svc in app.services:
            if prom_ok:
                out += check_service_metrics(ctx, app, svc, now)
            out += check_router(ctx, app, svc)
        if app.cluster is not None:
            out += check_permissions(app)
    out += check_hooks(ctx)
    out += check_unmatched_deploys(ctx)
    return out
