"""Ready before shift and scale with traffic: the I/O around app/core/readiness.py's pure rules.

- `observe_readiness` (the tick's observe, before `start` and each `advance`): can the candidate
  take the next step's share? On a Kubernetes router it first makes sure the candidate has the
  replicas that share needs, when the service has `scale:` (recording the original replicas before
  changing them), then counts its ready replicas. On another router (HAProxy), the router's health
  of the candidate (its server UP) is the readiness.
- `scale_due` (engine.commit_decision): a release that ends schedules its replicas work.
- `finish` (workers/scale.py, from the `due` set): after a failure or abort, put back what Sluice
  changed; after promotion, put HPA minReplicas back and scale the old version to 0 after
  `scale_down_delay` (or leave it to CI, or keep it). A crashed worker's item comes due again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.config_file.schema import ApplicationConfig
from app.core.config.policy import PolicyConfig
from app.core.config.services import ServiceConfig
from app.core.models import Event, Observations, Readiness, Release
from app.core.readiness import needed_replicas, next_weight
from integrations.registry.routers import ROUTERS
from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from app.context import Context
    from integrations.kubernetes.scaling import Replicas

log = logging.getLogger("sluice.scaling")

# How soon the after-release work looks again: while the router has not confirmed stable's weights,
# and after an API error (doubling, up to the cap).
WAIT_FOR_ROUTER = 1.0
RETRY_BASE, RETRY_CAP = 5.0, 300.0


def on_kubernetes(app: ApplicationConfig) -> bool:
    return app.cluster is not None and ROUTERS[app.router.type].needs_cluster


# --- before a shift ------------------------------------------------------------------------------------


def observe_readiness(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    policy: PolicyConfig,
    release: Release,
    obs: Observations,
    now: float,
) -> Readiness | None:
    """The candidate's readiness for the next shift (None: no shift ahead, or the router cannot tell)."""
    weight = next_weight(policy, release)
    if weight is None or release.shadow:  # a shadow release moves no traffic and changes nothing
        return None
    if on_kubernetes(app):
        return _kubernetes_readiness(ctx, app, svc, release, obs, weight, now)
    if obs.candidate_healthy is None and not obs.health_detail:  # not asked yet (a pending release)
        try:
            health = ctx.router(app).health(svc, release.target_version)
        except RouterError as exc:
            # Retrying can help: hold. It cannot (no server for the candidate): let the shift fail
            # the release with the router's own message, as it did before readiness was observed.
            return Readiness(weight=weight, error=str(exc)) if exc.retryable else None
        obs.candidate_healthy, obs.health_detail = health.healthy, health.detail
    if obs.candidate_healthy is None:
        return None  # e.g. an HAProxy server without health checks: HAProxy itself sends it traffic
    return Readiness(
        weight=weight, ready=1 if obs.candidate_healthy else 0, needed=1, detail=obs.health_detail or "not up"
    )


def _kubernetes_readiness(
    ctx: Context,
    app: ApplicationConfig,
    svc: ServiceConfig,
    release: Release,
    obs: Observations,
    weight: int,
    now: float,
) -> Readiness | None:
    from integrations.kubernetes import scaling

    assert app.cluster is not None
    try:
        kube = scaling.kube_for(app)
        stable = scaling.replicas_of(kube, app.namespace, app.cluster, svc.name, release.source_version)
        candidate = scaling.replicas_of(kube, app.namespace, app.cluster, svc.name, release.target_version)
        if candidate is None:
            return None  # never deployed: the shift fails the release with the router's message
        stable_ready = stable.ready if stable is not None else 0
        needed = needed_replicas(stable_ready, weight)
        if svc.scale is not None and svc.scale.with_traffic:
            _excuse_scaling_up(obs, release, candidate, stable_ready)
            needed = _ensure_replicas(ctx, app, release, candidate, needed, weight, stable_ready, now)
        else:
            # Sluice does not size it: ready for the share, as far as the replicas asked for go.
            needed = min(needed, max(1, candidate.desired))
    except RouterError as exc:
        return Readiness(weight=weight, error=str(exc))
    return Readiness(
        weight=weight, ready=candidate.ready, needed=needed, detail=f"{candidate.ready} of {needed} replicas ready"
    )


def _excuse_scaling_up(obs: Observations, release: Release, candidate: Replicas, stable_ready: int) -> None:
    """The router's health of a Deployment wants every desired replica ready. Replicas Sluice added
    for the next step are not ready at once: while the ready ones still cover the current share,
    and the rollout has not failed (obs.fatal), the candidate is healthy for the traffic it has."""
    if release.state != "running" or obs.candidate_healthy is not False or obs.fatal:
        return
    current = release.desired_weights.get(release.target_version, 0)
    now_needed = needed_replicas(stable_ready, current)
    if candidate.desired > candidate.ready >= now_needed:
        obs.candidate_healthy = True
        obs.health_detail = (
            f"{candidate.ready} of {candidate.desired} replicas ready: scaling up for the next step "
            f"({now_needed} cover {current}% of traffic now); was: {obs.health_detail}"
        )


def _ensure_replicas(
    ctx: Context,
    app: ApplicationConfig,
    release: Release,
    candidate: Replicas,
    needed: int,
    weight: int,
    stable_ready: int,
    now: float,
) -> int:
    """Give the candidate `needed` replicas (its HPA's minReplicas when it has one); returns the
    replicas it can then be expected to have ready (an HPA's maxReplicas caps them)."""
    from integrations.kubernetes import scaling

    kube = scaling.kube_for(app)
    attempts = getattr(app.router, "conflict_retries", 5)
    why = f"for {weight}% of traffic (stable has {stable_ready} ready)"
    hpa = scaling.autoscaler_of(kube, app.namespace, candidate.deployment)
    if hpa is not None:
        needed = min(needed, hpa.max_replicas)
        if hpa.min_replicas < needed:
            target = f"hpa/{hpa.name}"
            message = (
                f"raising HorizontalPodAutoscaler {hpa.name}'s minReplicas from {hpa.min_replicas} to {needed} {why}"
            )
            ctx.store.scaling.record_original(
                release.id, target, hpa.min_replicas, _event(now, "scaled", message, target, needed)
            )
            scaling.set_min_replicas(kube, app.namespace, hpa.name, needed, attempts)
        return needed
    if candidate.desired < needed:
        target = f"deployment/{candidate.deployment}"
        message = f"scaling Deployment {candidate.deployment} from {candidate.desired} to {needed} replicas {why}"
        ctx.store.scaling.record_original(
            release.id, target, candidate.desired, _event(now, "scaled", message, target, needed)
        )
        scaling.scale_deployment(kube, app.namespace, candidate.deployment, needed, attempts)
    return needed


def _event(at: float, kind: str, message: str, target: str, replicas: int) -> Event:
    return Event(at=at, type=kind, message=message, data={"target": target, "replicas": replicas})


# --- after the release -----------------------------------------------------------------------------------


def scale_due(ctx: Context, before: Release, after: Release, now: float) -> dict[str, float]:
    """The replicas work a decision starts: when a release of a service with `scale:` ends."""
    if not after.terminal or before.terminal or after.shadow:  # a shadow release changed no replicas
        return {}
    app = ctx.config.application(after.application)
    svc = app.service(after.service) if app else None
    if app is None or svc is None or svc.scale is None or not on_kubernetes(app):
        return {}
    from app.store import keys

    return {keys.scale_member(after.id): now}


def finish(ctx: Context, release_id: str, now: float) -> str:
    """The replicas work after a release ended; reschedules itself until it is all done."""
    store = ctx.store.scaling
    release = ctx.store.get(release_id)
    if release is None or not release.terminal:
        store.unschedule(release_id)
        return "nothing to do: the release is gone or not finished"
    if not release.weights_applied:
        # Traffic first: the candidate's replicas go only once stable has all of it again.
        store.schedule(release_id, now + WAIT_FOR_ROUTER)
        return "waiting for the router to confirm the final weights"
    app = ctx.config.application(release.application)
    svc = app.service(release.service) if app else None
    if app is None or svc is None or not on_kubernetes(app):
        store.unschedule(release_id)
        return "nothing to do: the service left the configuration"
    try:
        if release.state == "succeeded":
            outcome, again_at = _after_promotion(ctx, app, svc, release, now)
        else:
            outcome, again_at = _put_back(ctx, app, release, now), None
    except RouterError as exc:
        attempts = store.failed_attempt(release_id)
        if not exc.retryable:
            store.mark_done(release_id, "gave-up", now, Event(at=now, type="scale_error", message=str(exc)))
            store.unschedule(release_id)
            return f"gave up: {exc}"
        delay = min(RETRY_CAP, RETRY_BASE * 2 ** (attempts - 1))
        log.warning("release %s: replicas work failed (%s); again in %.0fs", release_id, exc, delay)
        store.schedule(release_id, now + delay)
        return f"retrying in {delay:.0f}s: {exc}"
    if again_at is None:
        store.unschedule(release_id)
    else:
        store.schedule(release_id, again_at)
    return outcome


def _put_back(ctx: Context, app: ApplicationConfig, release: Release, now: float) -> str:
    """Failed or aborted: every replica count Sluice changed goes back to what it was."""
    from integrations.kubernetes import scaling

    store = ctx.store.scaling
    originals = store.originals(release.id)
    if not originals or store.done(release.id, "restored"):
        return "nothing to put back"
    kube = scaling.kube_for(app)
    attempts = getattr(app.router, "conflict_retries", 5)
    said = []
    for target, original in sorted(originals.items()):
        kind, _, name = target.partition("/")
        if kind == "hpa":
            scaling.set_min_replicas(kube, app.namespace, name, original, attempts)
            said.append(f"HorizontalPodAutoscaler {name} minReplicas {original}")
        else:
            scaling.scale_deployment(kube, app.namespace, name, original, attempts)
            said.append(f"Deployment {name} {original} replicas")
    message = f"put back what Sluice scaled for {release.target_version}: " + ", ".join(said)
    store.mark_done(release.id, "restored", now, Event(at=now, type="scaled_back", message=message))
    return message


def _after_promotion(
    ctx: Context, app: ApplicationConfig, svc: ServiceConfig, release: Release, now: float
) -> tuple[str, float | None]:
    """HPA minReplicas back at once (the HPA sizes the new stable from now on); the old version
    kept warm for `scale_down_delay`, then to 0 (or left to CI, or kept)."""
    from integrations.kubernetes import scaling

    store = ctx.store.scaling
    kube = scaling.kube_for(app)
    attempts = getattr(app.router, "conflict_retries", 5)

    def done(what: str, kind: str, message: str) -> bool:
        return store.mark_done(release.id, what, now, Event(at=now, type=kind, message=message))

    said = []
    hpas = {t.partition("/")[2]: v for t, v in store.originals(release.id).items() if t.startswith("hpa/")}
    if hpas and not store.done(release.id, "hpa-restored"):
        for name, original in sorted(hpas.items()):
            scaling.set_min_replicas(kube, app.namespace, name, original, attempts)
        names = ", ".join(f"{name} to {v}" for name, v in sorted(hpas.items()))
        done("hpa-restored", "scaled_back", f"HorizontalPodAutoscaler minReplicas put back: {names}")
        said.append(f"minReplicas put back ({names})")
    mode = svc.scale.scale_down if svc.scale is not None else "never"
    old = release.source_version
    if mode != "sluice":
        if mode == "ci" and done("scale-down", "scale_down_skipped", f"{old} is left to CI's cleanup (scale_down: ci)"):
            said.append(f"{old} left to CI")
        return "; ".join(said) or f"scale_down: {mode}", None
    if store.done(release.id, "scale-down"):
        return "; ".join(said) or "already scaled down", None
    assert svc.scale is not None and release.finished_at is not None
    delay = svc.scale.scale_down_delay
    if now < release.finished_at + delay:
        return "; ".join(said + [f"{old} kept warm for {delay:.0f}s"]), release.finished_at + delay
    # A newer release may have brought the old version back (a rollback to it): never take away
    # the replicas of the version now stable or being released.
    active = ctx.store.active_release(release.application, release.service)
    active_release = ctx.store.get(active) if active else None
    if ctx.store.stable_version(release.application, release.service) == old or (
        active_release is not None and old in (active_release.target_version, active_release.source_version)
    ):
        done("scale-down", "scale_down_skipped", f"{old} is in use again; not scaled down")
        return f"{old} in use again", None
    assert app.cluster is not None
    replicas = scaling.replicas_of(kube, app.namespace, app.cluster, svc.name, old)
    if replicas is None:
        done("scale-down", "scaled_down", f"{old} has no Deployment left")
        return f"{old} already gone", None
    before = scaling.scale_deployment(kube, app.namespace, replicas.deployment, 0, attempts)
    message = f"scaled {old} down (Deployment {replicas.deployment}: {before} -> 0 replicas) {delay:.0f}s after " + (
        "its bake" if release.bake_started_at is not None else "promotion"
    )
    done("scale-down", "scaled_down", message)
    return "; ".join(said + [message]), None
