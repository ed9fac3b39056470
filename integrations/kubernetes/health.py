"""Health from the cluster, whatever the router: container restarts of the candidate since its release
started (against the service's `max_restarts`), and `ProgressDeadlineExceeded`, which fails the
release at once. Errors leave the observation empty (no data), never raise."""

from __future__ import annotations

import calendar
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from integrations.kubernetes.cluster import Kube, label_selector
from integrations.kubernetes.objects import list_deployments, rollout_state, version_labels

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from app.core.models import Observations, Release
    from integrations.routers.interface import Placement as ApplicationConfig


class KubeHealthContext(Protocol):
    """What this module uses of app.context.Context (integrations do not import the application)."""

    @property
    def store(self) -> Any: ...


log = logging.getLogger("sluice.kubernetes.health")
BASELINE_TTL = 7 * 24 * 3600
_kubes: dict[str, Kube] = {}


def _kube(app: ApplicationConfig) -> Kube:
    assert app.cluster is not None
    if app.name not in _kubes or _kubes[app.name].cluster != app.cluster:
        _kubes[app.name] = Kube(app.cluster)
    return _kubes[app.name]


def parse_time(value: str | None) -> float | None:
    """RFC 3339 as Kubernetes writes it (`2026-01-02T03:04:05Z`) -> unix seconds."""
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def pod_restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def observe_cluster(
    ctx: KubeHealthContext, app: ApplicationConfig, svc: ServiceConfig, release: Release, obs: Observations
) -> None:
    """Fill obs.restarts / obs.max_restarts / obs.fatal for the release's candidate."""
    try:
        kube = _kube(app)
        labels = version_labels(kube.cluster, svc.name, release.target_version)
        for dep in list_deployments(kube, app.namespace, labels):
            state, detail = rollout_state(dep)
            if state == "failed":
                obs.fatal = detail
        body = kube.raw(kube.core.list_namespaced_pod, app.namespace, label_selector=label_selector(labels))
        pods = body.get("items") or []
    except Exception as exc:  # noqa: BLE001 - an unreachable cluster is "no data", not a crash
        log.warning("release %s: cluster health unavailable: %s", release.id, exc)
        obs.restarts_detail = f"cluster health unavailable: {type(exc).__name__}"
        return
    restarts, flaps = restarts_since(ctx, release, pods), readiness_flaps(release, pods, time.time())
    obs.restarts, obs.max_restarts = restarts + len(flaps), svc.max_restarts
    worst = sorted(pods, key=pod_restarts, reverse=True)[:3]
    obs.restarts_detail = (
        f"{restarts} restart(s) of {release.target_version}'s containers since the release started "
        f"({len(pods)} pod(s)" + "".join(f"; {p['metadata']['name']}: {pod_restarts(p)} in total" for p in worst) + ")"
    )
    if flaps:
        obs.restarts_detail += f"; readiness lost during the release: {', '.join(flaps[:3])} (each counts as a restart)"


# A pod created during the release that is still not ready after this long has lost readiness.
READY_GRACE = 30.0


def readiness_flaps(release: Release, pods: list[dict[str, Any]], now: float) -> list[str]:
    """Pods of the candidate whose readiness changed during the release: a pod that existed before it
    and whose Ready condition changed since (it went unready, and maybe back), or a newer pod not
    ready after READY_GRACE. The API keeps only the last transition, so this is a floor: a pod that
    flapped twice between two evaluations counts once."""
    flapped = []
    for pod in pods:
        meta = pod.get("metadata", {})
        created = parse_time(meta.get("creationTimestamp"))
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None:
            continue
        changed = parse_time(ready.get("lastTransitionTime"))
        # creationTimestamp has one-second resolution: a pod created in the release's second existed before it
        before = created is not None and created <= release.created_at
        if before:
            if changed is not None and changed > release.created_at:
                flapped.append(meta.get("name", "?"))
        elif ready.get("status") != "True" and created is not None and now - created > READY_GRACE:
            flapped.append(meta.get("name", "?"))
    return flapped


def restarts_since(ctx: KubeHealthContext, release: Release, pods: list[dict[str, Any]]) -> int:
    """Restarts since the release started: a pod created before it counts from the count first seen
    (kept in Redis per release, so every worker agrees); a pod created after it counts from 0."""
    counts: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for pod in pods:
        meta = pod.get("metadata", {})
        uid = meta.get("uid") or meta.get("name", "")
        counts[uid] = pod_restarts(pod)
        created = parse_time(meta.get("creationTimestamp"))
        first_seen[uid] = 0 if created is not None and created >= int(release.created_at) else counts[uid]
    baselines = ctx.store.restart_baselines(release.id, first_seen, BASELINE_TTL)
    return sum(max(0, count - baselines.get(uid, 0)) for uid, count in counts.items())
