"""`sluice doctor`'s checks of the router and, with a cluster, Kubernetes permissions: the router can be
read and names the stable version; the API server allows every call Sluice's router and watcher make."""

from __future__ import annotations

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.services import ServiceConfig
from app.doctor.findings import Finding
from app.doctor.service_facts import stable_version


def check_router(ctx: Context, app: ApplicationConfig, svc: ServiceConfig) -> list[Finding]:
    name = f"{app.name}/{svc.name} router"
    kind = app.router.type
    try:
        router = ctx.router(app)
        weights = router.get_weights(svc)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        fix = (
            f"check `router.socket` and that HAProxy has a backend {svc.backend or svc.name!r}"
            " with one server per version"
            if kind == "haproxy"
            else f"create the {kind} route object {svc.route or svc.name!r} in namespace {app.namespace} "
            "(or set `route` on the service), and check the cluster credentials"
        )
        return [Finding(name, "fail", f"cannot read the {kind} router: {exc}", fix)]
    stable = stable_version(ctx, app, svc)
    shown = ", ".join(f"{v} {w}%" for v, w in weights.items()) or "no versions"
    if kind == "haproxy" and stable is not None and stable not in weights:
        backend = svc.backend or svc.name
        return [
            Finding(
                name,
                "fail",
                f"HAProxy backend {backend!r} has no server named {stable!r} (the stable version); servers: {shown}",
                f"name the backend's servers after versions: `server {stable} <address> weight 100 check`",
            )
        ]
    return [Finding(name, "pass", f"{kind} reads {shown}")]


def check_permissions(app: ApplicationConfig) -> list[Finding]:
    """Ask the API server whether this process's identity may make each call Sluice's router and
    ticks make (a failure), and the watcher's watch (a warning: in deploy/ only the watcher's
    service account may watch, so doctor run as the web or the worker is refused it by design)."""
    from integrations.kubernetes.permissions import COMMON_CALLS, SCALE_CALLS, WATCH_CALLS
    from integrations.registry.routers import ROUTERS

    name = f"{app.name} kubernetes permissions"
    scaling = SCALE_CALLS if any(s.scale is not None for s in app.services) else frozenset()
    calls = sorted((COMMON_CALLS - WATCH_CALLS) | scaling | ROUTERS[app.router.type].permissions)
    try:
        denied = _denied(app, calls)
        watch_denied = _denied(app, sorted(WATCH_CALLS))
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return [Finding(name, "fail", f"cannot ask the API server: {type(exc).__name__}: {exc}", "check `cluster`")]
    if denied:
        found = Finding(
            name,
            "fail",
            f"Sluice may not {', '.join(denied)} in namespace {app.namespace}",
            "apply deploy/rbac.yaml (its rules are exactly the calls Sluice makes) to Sluice's ServiceAccount",
        )
    else:
        found = Finding(name, "pass", f"all {len(calls)} calls allowed in namespace {app.namespace}")
    watch = Finding(f"{app.name} kubernetes watch", "pass", "this identity may watch Deployments")
    if watch_denied:
        watch = Finding(
            watch.name,
            "warn",
            f"this identity may not {', '.join(watch_denied)} in namespace {app.namespace}: "
            "right for the web and the worker, wrong for the watcher",
            "only `sluice watcher` watches: run doctor with the watcher's credentials (deploy/rbac.yaml's "
            "sluice-watcher) to check it",
        )
    return [found, watch]


def _denied(app: ApplicationConfig, calls: list[tuple[str, str, str]]) -> list[str]:
    """The calls a SelfSubjectAccessReview says this identity may not make, as `verb resource.group`."""
    from kubernetes import client

    from integrations.kubernetes.cluster import api_client

    assert app.cluster is not None
    authz = client.AuthorizationV1Api(api_client(app.cluster))
    denied = []
    for group, resource, verb in calls:
        resource, _, sub = resource.partition("/")
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    group=group, resource=resource, subresource=sub or None, verb=verb, namespace=app.namespace
                )
            )
        )
        answer = authz.create_self_subject_access_review(review, _request_timeout=app.cluster.timeout)
        if not (answer.status and answer.status.allowed):
            denied.append(f"{verb} {resource}{'/' + sub if sub else ''}{'.' + group if group else ''}")
    return denied
