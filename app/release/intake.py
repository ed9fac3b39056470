"""Starting a release from a deploy notification (webhook today; the Kubernetes watcher later).

The same version of the same service is one release however many times it is announced:
the first notification starts it, the others are recorded as duplicates on it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.config.services import BumpPolicies, ServiceConfig
from app.core.known_bad import KnownBad
from app.core.models import CIContext, Event, Release
from app.core.names import check_label_value, semver_bump
from app.release import shadow
from app.release.control import ControlError, control
from app.store import DedupBusy, keys, new_release_id
from app.store.rate_limits import Count
from integrations.routers.interface import RouterError

# The first tick is stored with the release, a little later than the intake schedules it, so a
# crash between storing the release and claiming its service still leaves a tick to finish the job.
CLAIM_BACKSTOP_SECONDS = 10.0


class IntakeError(Exception):
    def __init__(self, status: int, message: str, detail: object = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Force:
    """Release a version again although it is known-bad (or its earlier release finished): who, and why."""

    by: str
    reason: str = ""


def refusal_detail(known: KnownBad) -> dict[str, object]:
    """What a refused announcement answers besides the message: the release that made it bad and its link."""
    return {
        "known_bad": known.model_dump(),
        "release": known.release_id,
        "status_url": f"/api/v1/releases/{known.release_id}",
        "fix": 'send "force": true (with "by" and "reason") to release it again, or clear it: '
        "DELETE /api/v1/services/<service>/known-bad/<version>",
    }


@dataclass
class Intake:
    release: Release
    created: bool
    fleet: str | None = None  # the fleet the announcement started (or found): `release` is its first member


def resolve_service(ctx: Context, service: str, application: str | None) -> tuple[ApplicationConfig, ServiceConfig]:
    apps = ctx.config.find_service(service, application)
    if not apps:
        known = sorted({f"{a.name}/{s.name}" for a in ctx.config.applications for s in a.services})
        where = f" in application {application!r}" if application else ""
        raise IntakeError(404, f"no service {service!r}{where} in the configuration", {"known_services": known})
    if len(apps) > 1:
        raise IntakeError(
            400,
            f"service {service!r} is in several applications; name one in `application`",
            {"applications": [a.name for a in apps]},
        )
    svc = apps[0].service(service)
    assert svc is not None
    return apps[0], svc


def _stable_version(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    fallback: str | None = None,
    shadow_of: str | None = None,
) -> str:
    """`shadow_of`: the version a shadow release judges, which may already have traffic (a team
    shifting by hand): the other live version is then the stable one."""
    stable = ctx.store.stable_version(app.name, svc.name) or svc.stable_version
    if stable:
        return stable
    try:
        weights = ctx.router(app).get_weights(svc)
    except RouterError as exc:
        if fallback:
            return fallback
        raise IntakeError(503, f"cannot learn the stable version of {svc.name!r} from the router: {exc}") from None
    other = shadow.source_from_weights(weights, shadow_of) if shadow_of else None
    if other:
        return other
    live = {v: w for v, w in weights.items() if w > 0}
    if len(live) != 1 and fallback:
        return fallback  # e.g. the Kubernetes watcher: the one other available Deployment of the service
    if len(live) != 1:
        raise IntakeError(
            409,
            f"cannot tell the stable version of {svc.name!r}: the router splits traffic "
            f"{weights}; set `stable_version` for the service in the configuration",
        )
    return next(iter(live))


def policy_names(svc: ServiceConfig) -> list[str]:
    """Every policy a release of the service may get."""
    if isinstance(svc.policy, str):
        return [svc.policy]
    return [name for name in svc.policy.model_dump().values() if name]


def choose_policy(svc: ServiceConfig, source: str, target: str) -> str:
    if isinstance(svc.policy, str):
        return svc.policy
    policies: BumpPolicies = svc.policy
    bump = semver_bump(source, target)
    chosen = getattr(policies, bump) if bump else None
    chosen = chosen or policies.default or policies.minor or policies.patch or policies.major
    assert chosen is not None  # the configuration guarantees at least one
    return chosen


def start_release(
    ctx: Context,
    service: str,
    version: str,
    application: str | None = None,
    namespace: str | None = None,
    ci: CIContext | None = None,
    trigger: str = "webhook",
    fallback_source: str | None = None,
    mode: str | None = None,
    force: Force | None = None,
    count: Count | None = None,
) -> Intake:
    """`fallback_source`: the stable version when neither Sluice's record, the configuration nor the
    router can tell (the watcher passes the service's one other running version). `mode`: "shadow"
    to judge without moving traffic (app/release/shadow.py); None: as the service and policy say. A known-bad
    version (app/core/known_bad.py) is refused with 409 unless `force` says who releases it again, and why.
    `count`: a receiver's rate limit, counted with the first Redis effect (RateLimited: nothing done)."""
    app, svc = _checked_service(ctx, service, version, application, namespace)
    early = _early_mode(ctx, svc, mode)
    live_key = keys.deploy_dedup(app.name, svc.name, version)
    shadow_key = keys.shadow_dedup(live_key)  # a live release of the same version is another release
    now = time.time()
    again = Event(at=now, type="duplicate", message=f"{trigger} announced {version} again")
    known = None
    if force is None:  # the known-bad check and the duplicate claims in one round trip (a retrying CI's path)
        tried = {"live": [live_key], "shadow": [shadow_key], None: [live_key, shadow_key]}[early]
        found = ctx.store.known_bad_or_duplicate(app.name, svc.name, version, tried, again, count=count)
        if isinstance(found, KnownBad):
            raise IntakeError(409, found.refusal(), refusal_detail(found))
        if found is not None:
            return Intake(found, created=False)
    else:  # forced: a new release even if one was announced; the known-bad entry goes on its first event
        if count is not None:  # rare: counted in a round trip of its own, before anything is read or done
            ctx.store.count_request(count)
        known = ctx.store.known_bad_version(app.name, svc.name, version)
    source = _stable_version(ctx, app, svc, fallback_source, shadow_of=version if early == "shadow" else None)
    if source == version:
        raise IntakeError(409, f"{version} is already the stable version of {svc.name!r}; nothing to release")
    release = _new_release(ctx, app, svc, source, version, mode, now, ci, trigger, force)
    dedup_key = shadow_key if release.shadow else live_key
    try:
        release, created = ctx.store.create(
            release,
            dedup_key,
            _created_event(release, trigger, force, known, now),
            first_tick_at=now + CLAIM_BACKSTOP_SECONDS,
            duplicate=again,  # a concurrent announcement won the claim: this one is its duplicate
            force=force is not None,
        )
    except DedupBusy:
        raise IntakeError(503, f"{version} of {svc.name!r} is being stored by another request; retry") from None
    if not created:
        return Intake(release, created=False)
    if not release.shadow:  # a shadow release owns no traffic: it supersedes nothing (app/release/shadow.py)
        claim_service(ctx, release)
    ctx.store.schedule_tick(release.id, release.seq, now)
    return Intake(release, created=True)


def _checked_service(
    ctx: Context, service: str, version: str, application: str | None, namespace: str | None
) -> tuple[ApplicationConfig, ServiceConfig]:
    """The announced service, once its names are valid labels and its namespace is its application's."""
    try:
        check_label_value(service, "service")
        check_label_value(version, "version")
        if namespace is not None:
            check_label_value(namespace, "namespace")
    except ValueError as exc:
        raise IntakeError(400, str(exc)) from None
    app, svc = resolve_service(ctx, service, application)
    if namespace is not None and namespace != app.namespace:
        raise IntakeError(400, f"application {app.name!r} is in namespace {app.namespace!r}, not {namespace!r}")
    return app, svc


def _early_mode(ctx: Context, svc: ServiceConfig, mode: str | None) -> str | None:
    """The release's mode as far as it is known before its source version (which dedup keys to try)."""
    policies = [ctx.config.policy(name) for name in policy_names(svc)]
    try:
        return shadow.mode_before_source(svc, policies, mode)
    except shadow.ModeConflict as exc:
        raise IntakeError(409 if mode == "live" else 400, str(exc)) from None


def _new_release(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    source: str,
    version: str,
    mode: str | None,
    now: float,
    ci: CIContext | None,
    trigger: str,
    force: Force | None,
) -> Release:
    """The release to store: its policy (by the version bump) and its mode (live or shadow)."""
    policy = choose_policy(svc, source, version)
    try:
        release_mode, shadow_hooks = shadow.resolve_mode(svc, ctx.config.policy(policy), mode)
    except shadow.ModeConflict as exc:
        raise IntakeError(409, str(exc)) from None
    return Release(
        id=new_release_id(),
        application=app.name,
        namespace=app.namespace,
        service=svc.name,
        source_version=source,
        target_version=version,
        policy=policy,
        created_at=now,
        updated_at=now,
        ci=ci or CIContext(),
        trigger=trigger,
        actor=force.by if force is not None else None,
        next_tick_at=now,
        mode=release_mode,
        shadow_hooks=shadow_hooks,
    )


def _created_event(release: Release, trigger: str, force: Force | None, known: KnownBad | None, now: float) -> Event:
    """The release's first event: what started it, and who forced it past a known-bad version."""
    source, version = release.source_version, release.target_version
    note = f"{trigger}: {'shadow ' if release.shadow else ''}release {source} -> {version} with policy {release.policy}"
    if release.shadow:
        note += " (judged only: traffic is not moved)"
    data: dict[str, object] = {"trigger": trigger, "ci": release.ci.model_dump(exclude_none=True), "mode": release.mode}
    if force is not None:
        note += f"; forced by {force.by}" + (f" ({force.reason})" if force.reason else "")
        if known is not None:
            note += f", although {known.version} {known.reason}"
        data["forced"] = {"by": force.by, "reason": force.reason, "known_bad": known.model_dump() if known else None}
    return Event(at=now, type="created", message=note, data=data)


def claim_service(ctx: Context, release: Release) -> str | None:
    """Make `release` the one that moves its service's traffic, aborting an older release in flight
    first (its traffic goes back to stable). Returns the service's owner afterwards: a newer
    release keeps the service, and this one will be retired by its tick.

    Called by the intake right after storing a release, and again by the release's first tick,
    so that a crash between the two loses nothing."""
    owner = ctx.store.active_release(release.application, release.service)
    if owner == release.id:
        return owner
    current = ctx.store.get(owner) if owner else None
    if current is not None and not current.terminal and current.created_at > release.created_at:
        return owner  # a newer release already took the service
    if current is not None and not current.terminal:
        with contextlib.suppress(ControlError):  # it finished meanwhile: nothing to supersede
            control(
                ctx,
                current.id,
                "abort",
                actor="sluice",
                reason=f"superseded by release {release.id} ({release.target_version})",
                wait=0,  # the new release sets the service's weights itself
            )
    ctx.store.set_active(release.application, release.service, release.id)
    return release.id
