"""`sluice doctor`: the configuration checked against the live world, before the first release.

Each check gives `pass`, `warn` (works, but something will surprise you) or `fail` (a release would
not work as configured), with what was found and how to fix it. Nothing here changes anything: Redis
is asked for its settings, Prometheus for series, the router read, Kubernetes asked whether Sluice
*may* do what it will do (SelfSubjectAccessReview), CircleCI who the token belongs to (`GET /me`).
The CLI prints the checklist (exit 0 only without a failure), the API answers it as JSON, and
`sluice demo` runs it before its first release.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.doctor.redis_auth import check_redis_auth
from app.doctor.sentinel import check_sentinel
from app.store.connection import is_sentinel, shown

Status = Literal["pass", "warn", "fail"]
# How far back doctor looks for a service's series ("now" for a service with steady traffic).
RECENT_SECONDS = 300.0
SERIES_HISTORY = "1h"


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def passed(findings: list[Finding]) -> bool:
    """All pass (warnings allowed)."""
    return all(f.status != "fail" for f in findings)


MARKS = {"pass": "[green]✔[/]", "warn": "[yellow]![/]", "fail": "[red]✘[/]"}


def render(findings: list[Finding], markup: bool = True) -> str:
    """The checklist, one line per check and an indented fix under each warning or failure."""
    lines = []
    for f in findings:
        mark = MARKS[f.status] if markup else {"pass": "ok  ", "warn": "warn", "fail": "FAIL"}[f.status]
        lines.append(f"{mark} {f.name}: {f.detail}")
        if f.fix and f.status != "pass":
            lines.append(f"    fix: {f.fix}")
    fails = sum(f.status == "fail" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    lines.append(f"{len(findings)} checks: {fails} failed, {warns} warning(s)")
    return "\n".join(lines)


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


def check_unmatched_deploys(ctx: Context) -> list[Finding]:
    """CircleCI deploys answered "ignored" because no project matched their slug (app/release/unmatched.py)."""
    from app.release.unmatched import unmatched_deploys
    from app.store import StoreUnavailable

    try:
        found = unmatched_deploys(ctx)
    except StoreUnavailable:
        return []  # check_redis already says so
    return [
        Finding(f"circleci project {u.slug}", "warn", f"{u.count} deploy(s) ignored: no circleci.projects entry", u.fix)
        for u in found
    ]


# --- Redis ------------------------------------------------------------------------------------------


def check_redis(ctx: Context) -> list[Finding]:
    sentinel = [Finding(*f) for f in check_sentinel(ctx.redis_url)] if is_sentinel(ctx.redis_url) else []
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


# --- Prometheus and each service's series -----------------------------------------------------------


def _prometheus_provider(ctx: Context) -> Any:
    from integrations.prometheus.provider import PrometheusProvider

    provider = ctx.metrics_provider
    return provider if isinstance(provider, PrometheusProvider) else None


def check_prometheus(ctx: Context, now: float) -> list[Finding]:
    provider = _prometheus_provider(ctx)
    if provider is None:
        return [Finding("metrics", "pass", f"metrics provider {ctx.config.metrics_source.type}: checked per service")]
    value, error = provider.querier.query_value("vector(1)", now)
    if error is not None or value != 1:
        return [
            Finding(
                "prometheus",
                "fail",
                error or f"`vector(1)` answered {value}",
                f"start Prometheus or fix `prometheus.url` ({provider.querier.url}; PROMETHEUS_URL overrides it)",
            )
        ]
    return [Finding("prometheus", "pass", f"{provider.querier.url} answers queries")]


def service_policies(ctx: Context, svc: ServiceConfig) -> list[PolicyConfig]:
    names = [svc.policy] if isinstance(svc.policy, str) else [n for n in svc.policy.model_dump().values() if n]
    return [ctx.config.policy(n) for n in dict.fromkeys(names)]


def stable_version(ctx: Context, app: ApplicationConfig, svc: ServiceConfig) -> str | None:
    try:
        recorded = ctx.store.stable_version(app.name, svc.name)
    except Exception:  # noqa: BLE001 - Redis down is its own finding
        recorded = None
    return recorded or svc.stable_version


def check_service_metrics(ctx: Context, app: ApplicationConfig, svc: ServiceConfig, now: float) -> list[Finding]:
    name = f"{app.name}/{svc.name}"
    stable = stable_version(ctx, app, svc)
    if stable is None:
        return [
            Finding(
                f"{name} metrics",
                "warn",
                "no stable version known (no release yet and no `stable_version`): cannot check its series",
                f"set `stable_version` on service {svc.name!r}, or let a first release set it",
            )
        ]
    counts = ctx.metrics_provider.response_counts(svc.name, stable, app.namespace, now - RECENT_SECONDS, now)
    out: list[Finding] = []
    if counts.requests is None:
        return [
            Finding(
                f"{name} metrics",
                "fail",
                f"the judge's counts for stable {stable} are empty: {counts.error}",
                "make the labels in `prometheus:` (service_label, version_label, namespace_label, requests_metric) "
                "match what the service exports, or fix its scrape",
            )
        ]
    if counts.requests <= 0:
        out.append(
            Finding(
                f"{name} metrics",
                "warn",
                f"stable {stable} has series but served no requests in the last {RECENT_SECONDS:.0f}s",
                "send traffic before a release: with none, steps wait and time out",
            )
        )
    else:
        out.append(
            Finding(
                f"{name} metrics", "pass", f"stable {stable}: {counts.requests:,.0f} requests in the last 5 minutes"
            )
        )
    provider = _prometheus_provider(ctx)
    if provider is not None:
        out += _status_series(provider, svc, stable, app.namespace, now, name)
        out += _buckets(ctx, provider, svc, stable, app.namespace, now, name)
    out += _query_checks(ctx, app, svc, stable, now, name)
    return out


def _selector(provider: Any, svc: str, version: str, namespace: str) -> str:
    from integrations.prometheus import queries
    from integrations.prometheus.promql import render

    return render(queries.selector(provider.config), {"service": svc, "version": version, "namespace": namespace})


def _status_series(provider: Any, svc: ServiceConfig, stable: str, ns: str, now: float, name: str) -> list[Finding]:
    cfg = provider.config
    sel = _selector(provider, svc.name, stable, ns)
    query = f"count by ({cfg.status_label}) (last_over_time({cfg.requests_metric}{{{sel}}}[{SERIES_HISTORY}]))"
    series, error = provider.querier.query_vector(query, now)
    if error is not None:
        return [Finding(f"{name} status series", "warn", f"could not list them: {error}")]
    codes = sorted(labels.get(cfg.status_label, "") for labels, _ in series)
    if codes and all(c.startswith("2") for c in codes):
        return [
            Finding(
                f"{name} status series",
                "warn",
                f"only {', '.join(codes)} series exist: a first 5xx creates its series then, and rate()-based "
                "checks (error_rate, your queries) see it only from its second sample",
                f"pre-initialise the counters at start-up, e.g. with prometheus_client "
                f"`{cfg.requests_metric.removesuffix('_total')}.labels(code='500', ...)` (create, do not "
                "increment) for 500/502/503 and common 4xx; the judge's own counts include new series, "
                "your queries do not",
            )
        ]
    return [Finding(f"{name} status series", "pass", f"codes exported: {', '.join(codes) or 'none yet'}")]


def _buckets(
    ctx: Context, provider: Any, svc: ServiceConfig, stable: str, ns: str, now: float, name: str
) -> list[Finding]:
    cfg = provider.config
    sel = _selector(provider, svc.name, stable, ns)
    query = f"count by (le) (last_over_time({cfg.latency_histogram}_bucket{{{sel}}}[{SERIES_HISTORY}]))"
    series, error = provider.querier.query_vector(query, now)
    if error is not None:
        return [Finding(f"{name} latency buckets", "warn", f"could not list them: {error}")]
    bounds = set()
    for labels, _ in series:
        try:
            bounds.add(float(labels.get("le", "")))
        except ValueError:
            continue
    unders = sorted(
        {
            (p.name, c.name, c.under)
            for p in service_policies(ctx, svc)
            for c in p.checks
            if c.type == "latency" and c.under
        }
    )
    judge_unders = sorted({p.judge.slow.under for p in service_policies(ctx, svc) if p.judge.slow.under})
    if not bounds:
        status: Status = "fail" if unders else "warn"
        return [
            Finding(
                f"{name} latency buckets",
                status,
                f"no {cfg.latency_histogram}_bucket series for stable {stable}: the slow comparison is off"
                + (" and latency checks have no data" if unders else ""),
                f"export a latency histogram named {cfg.latency_histogram} (or set prometheus.latency_histogram)",
            )
        ]
    shown = ", ".join(_fmt_bound(b) for b in sorted(bounds))
    missing = [(p, c, u) for p, c, u in unders if not any(math.isclose(u, b, rel_tol=1e-9) for b in bounds)]
    missing_judge = [u for u in judge_unders if not any(math.isclose(u, b, rel_tol=1e-9) for b in bounds)]
    if missing or missing_judge:
        what = [f"check {c!r} of policy {p!r} (under {_fmt_bound(u)})" for p, c, u in missing]
        what += [f"judge.slow.under {_fmt_bound(u)}" for u in missing_judge]
        return [
            Finding(
                f"{name} latency buckets",
                "fail",
                f"{'; '.join(what)}: not a bucket bound of {cfg.latency_histogram} (bounds: {shown})",
                "use a bound the histogram has, or add that bucket to the service's histogram",
            )
        ]
    return [Finding(f"{name} latency buckets", "pass", f"bounds {shown}")]


def _fmt_bound(b: float) -> str:
    return "+Inf" if math.isinf(b) else f"{b:g}s"


def _query_checks(
    ctx: Context, app: ApplicationConfig, svc: ServiceConfig, stable: str, now: float, name: str
) -> list[Finding]:
    """The policies' own PromQL checks, asked about the stable version now."""
    from app.core.models import Release

    out = []
    for policy in service_policies(ctx, svc):
        queries = [c for c in policy.checks if c.type == "query"]
        if not queries:
            continue
        probe = Release(
            id="doctor",
            application=app.name,
            namespace=app.namespace,
            service=svc.name,
            source_version=stable,
            target_version=stable,
            policy=policy.name,
            created_at=now,
            updated_at=now,
        )
        only = policy.model_copy(update={"checks": queries})
        for obs in ctx.metrics_provider.observe_checks(only, ctx.config.metrics, probe, now):
            if obs.value is None:
                out.append(
                    Finding(
                        f"{name} check {obs.name!r} ({policy.name})",
                        "fail",
                        f"no data for stable {stable}: {obs.error} — query: {obs.query}",
                        "fix the metric's query or its labels (run it in Prometheus with the stable version)",
                    )
                )
            else:
                out.append(
                    Finding(f"{name} check {obs.name!r} ({policy.name})", "pass", f"stable reads {obs.value:.4g}")
                )
    return out


# --- the router and Kubernetes permissions -----------------------------------------------------------


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
    """Ask the API server whether Sluice's identity may make each call its router and watcher make."""
    from kubernetes import client

    from integrations.kubernetes.cluster import api_client
    from integrations.kubernetes.permissions import COMMON_CALLS, SCALE_CALLS
    from integrations.registry.routers import ROUTERS

    name = f"{app.name} kubernetes permissions"
    scaling = SCALE_CALLS if any(s.scale is not None for s in app.services) else frozenset()
    calls = sorted(COMMON_CALLS | scaling | ROUTERS[app.router.type].permissions)
    assert app.cluster is not None
    try:
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
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return [Finding(name, "fail", f"cannot ask the API server: {type(exc).__name__}: {exc}", "check `cluster`")]
    if denied:
        return [
            Finding(
                name,
                "fail",
                f"Sluice may not {', '.join(denied)} in namespace {app.namespace}",
                "apply deploy/rbac.yaml (its rules are exactly the calls Sluice makes) to Sluice's ServiceAccount",
            )
        ]
    return [Finding(name, "pass", f"all {len(calls)} calls allowed in namespace {app.namespace}")]


# --- hooks and CircleCI ------------------------------------------------------------------------------


def check_hooks(ctx: Context) -> list[Finding]:
    out = []
    circleci_token_envs = set()
    for hook in ctx.config.hooks:
        problems, fixes = [], []
        fields = hook.model_dump()
        for key, value in fields.items():
            if (key == "url" or key.endswith("_url")) and isinstance(value, str) and not _well_formed(value):
                problems.append(f"{key} {value!r} is not an http(s) URL with a host")
                fixes.append(f"give `{key}` as http(s)://host/path")
            if key.endswith("_env") and isinstance(value, str):
                secret = os.environ.get(value)
                if not secret:
                    problems.append(f"${value} ({key}) is not set in the environment")
                    fixes.append(f"export {value}=... where Sluice's web and worker processes run")
                elif key == "url_env" and not _well_formed(secret):
                    problems.append(f"${value} does not hold an http(s) URL")
                    fixes.append(f"set {value} to the webhook URL")
        if hook.type.startswith("circleci"):
            circleci_token_envs.add(fields.get("token_env", "CIRCLECI_TOKEN"))
        if problems:
            out.append(Finding(f"hook {hook.name}", "fail", "; ".join(problems), "; ".join(dict.fromkeys(fixes))))
        else:
            out.append(Finding(f"hook {hook.name}", "pass", f"{hook.type}: URL and secrets present"))
    for env in sorted(circleci_token_envs):
        token = os.environ.get(env)
        if token:
            out.append(check_circleci(ctx, env, token))
    return out


def _well_formed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_circleci(ctx: Context, env: str, token: str) -> Finding:
    import requests

    from integrations.circleci.hooks import circleci_api_url

    base = circleci_api_url(ctx.config)
    try:
        resp = requests.get(f"{base}/me", headers={"Circle-Token": token}, timeout=10)
    except requests.RequestException as exc:
        return Finding("circleci", "fail", f"cannot reach {base}: {type(exc).__name__}", "check circleci.api_url")
    if resp.status_code == 200:
        try:
            who = resp.json().get("login") or resp.json().get("name") or "?"
        except ValueError:
            who = "?"
        return Finding("circleci", "pass", f"${env} is valid at {base} (user {who})")
    return Finding(
        "circleci",
        "fail",
        f"GET {base}/me with ${env} answered {resp.status_code}",
        f"create a personal API token in CircleCI (User settings → Personal API Tokens) and set {env}",
    )
