"""The watcher: finds new versions by watching Deployments, and starts their releases.

For each (cluster, namespace) of the configured applications (with `cluster.watch`), it lists the
Deployments that carry the service label, then watches from the list's resourceVersion (with
bookmarks, resuming from the last resourceVersion seen; a 410 Gone means relist). A Deployment of a
known service whose version is not the stable one starts a release once it becomes available (as
`kubectl rollout status` judges it), with the CI context from its annotations. The webhook and the
watcher de-duplicate each other through `start_release` (its dedup key): whichever comes first
starts the release, the other is recorded as a duplicate.

Only one watcher acts at a time: a Redis leader lease (`lock:watcher`) renewed every TTL/4; a
standby polls as often and takes over within one TTL of the leader's last renewal.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from app.config_file.schema import ApplicationConfig
from app.context import Context
from app.core.models import CIContext
from app.core.names import LABEL_VALUE_RE
from app.release.fleet_intake import fleet_intake
from app.release.intake import IntakeError, start_release
from app.store import keys
from integrations.kubernetes.cluster import Kube
from integrations.kubernetes.config import ClusterConfig
from integrations.kubernetes.health import parse_time
from integrations.kubernetes.objects import rollout_state
from workers import liveness

log = logging.getLogger("sluice.watcher")
LEADER_TTL = 15.0
WATCH_SECONDS = 60.0
BACKOFF_FIRST = 0.5  # after a watch or list error; doubling up to BACKOFF_MAX
BACKOFF_MAX = 30.0

# CircleCI's annotations on a Deployment (the orb and `kubectl annotate` in a job) -> CIContext fields.
CI_ANNOTATIONS = {
    "circleci.com/workflow-id": "workflow_id",
    "circleci.com/pipeline-id": "pipeline_id",
    "circleci.com/pipeline-number": "pipeline_number",
    "circleci.com/build-number": "job_number",
    "circleci.com/build-url": "build_url",
    "circleci.com/job-name": "job_name",
    "circleci.com/project-slug": "project_slug",
}


def ci_from_annotations(annotations: dict[str, str]) -> CIContext:
    """The CI context a Deployment carries; values that are not valid are left out (and logged)."""
    fields: dict[str, Any] = {}
    for key, name in CI_ANNOTATIONS.items():
        value = annotations.get(key)
        if value is None:
            continue
        try:
            CIContext.model_validate({name: value})
            fields[name] = value
        except ValidationError:
            log.warning("ignoring annotation %s=%r: not a valid %s", key, value[:100], name)
    if fields:
        fields["provider"] = "circleci"
    return CIContext.model_validate(fields)


@dataclass
class WatcherStart:
    """A release the watcher started (or found already started): for logs and tests."""

    at: float
    application: str
    service: str
    version: str
    release_id: str
    created: bool


@dataclass
class NamespaceWatch:
    """List, then watch, the Deployments of one namespace of one cluster."""

    cluster: ClusterConfig
    namespace: str
    applications: list[ApplicationConfig]
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> last seen
    resource_version: str | None = None
    lists: int = 0
    gone: int = 0
    events: int = 0  # watch events received (bookmarks included)
    interrupted: int = 0  # watches that ended in an error other than 410 (dropped, refused, unreachable)


class Watcher:
    def __init__(self, ctx: Context, watch_seconds: float = WATCH_SECONDS, leader_ttl: float = LEADER_TTL):
        self.ctx = ctx
        self.watch_seconds = watch_seconds
        self.leader_ttl = leader_ttl
        self.token = uuid.uuid4().hex
        self.leading = False
        self._lease_until = 0.0  # monotonic time our lease runs out unless renewed
        self.started: deque[WatcherStart] = deque(maxlen=1000)  # the latest only: a watcher runs for months
        self.watches = self._plan()
        self._announced: set[tuple[str, str, str]] = set()
        self._threads: list[threading.Thread] = []
        self._stop_watches = threading.Event()
        self._lock = threading.Lock()

    def _plan(self) -> list[NamespaceWatch]:
        by_target: dict[tuple[ClusterConfig, str], list[ApplicationConfig]] = {}
        for app in self.ctx.config.applications:
            if app.cluster is not None and app.cluster.watch:
                by_target.setdefault((app.cluster, app.namespace), []).append(app)
        return [NamespaceWatch(c, ns, apps) for (c, ns), apps in by_target.items()]

    # --- leadership -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Lead (or stand by) until `stop` is set."""
        if not self.watches:
            log.warning("watcher: no application has a `cluster` to watch; idling")
        while not stop.is_set():
            liveness.beat("watcher")  # leader or standby, Redis up or down: this loop turns
            asked = time.monotonic()
            try:
                leading = self.ctx.store.try_lead("watcher", self.token, self.leader_ttl)
            except Exception:  # noqa: BLE001 - Redis unreachable: not leading, try again
                log.exception("watcher: cannot reach Redis for the leader lease")
                leading = False
            if leading:
                # Counted from before the call: Redis may have set the expiry at any point during it.
                self._lease_until = asked + self.leader_ttl
            if leading and not self.leading:
                log.info("watcher: leading; watching %d namespace(s)", len(self.watches))
                self.leading = True
                self._start()
            elif not leading and self.leading:
                log.warning("watcher: lost the leader lease; standing by")
                self.leading = False  # before the (slow) join: another watcher may be leading already
                self._stop()
            stop.wait(self.leader_ttl / 4)
        self.leading = False  # from here on nothing is started, so the lease can go at once
        self._resign()
        self._stop()

    def acting(self) -> bool:
        """Whether this watcher may start releases: it leads, and its lease has not run out (a renewal
        stuck on a hung Redis must not leave two leaders acting)."""
        return self.leading and time.monotonic() < self._lease_until

    def _resign(self) -> None:
        """Give the lease up at once on a clean exit, so a standby need not wait for it to expire."""
        try:
            self.ctx.store.resign("watcher", self.token)
        except Exception:  # noqa: BLE001
            log.warning("watcher: could not release the leader lease; it expires in %ss", self.leader_ttl)

    def _start(self) -> None:
        self._stop_watches = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_loop, args=(w, self._stop_watches), daemon=True, name="watch")
            for w in self.watches
        ]
        for t in self._threads:
            t.start()

    def _stop(self) -> None:
        self._stop_watches.set()
        for t in self._threads:
            t.join(timeout=self.watch_seconds + 10)
        self._threads = []

    # --- list and watch -------------------------------------------------------------------------------

    def _watch_loop(self, nw: NamespaceWatch, stop: threading.Event) -> None:
        """List once, then watch, resuming from the last resourceVersion seen whenever the stream ends
        or is cut (no relist: nothing is missed, nothing re-handled); relist only on 410 Gone. Errors
        back off from 0.5 s doubling to 30 s; a watch that got events before it broke starts the
        backoff again from the bottom (a dropped connection is retried after 0.5 s, a down server
        ever more slowly)."""
        backoff = BACKOFF_FIRST
        kube: Kube | None = None
        while not stop.is_set():
            seen = nw.events
            try:
                kube = kube or Kube(nw.cluster)  # inside the try: a bad kubeconfig is retried, not fatal
                if nw.resource_version is None:
                    self._list(kube, nw)
                self._follow(kube, nw, stop)
                # Look again at what is cached: a release refused for a passing reason (503) gets
                # another chance even when its Deployment never changes again.
                for dep in list(nw.deployments.values()):
                    self.handle(nw, dep)
                backoff = BACKOFF_FIRST
                continue
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: start again from a list
                    log.info("watcher: %s: resourceVersion %s is gone; relisting", nw.namespace, nw.resource_version)
                    nw.gone += 1
                    nw.resource_version = None
                    continue
                problem = f"Kubernetes API error {exc.status}: {exc.reason}"
            except Exception as exc:  # noqa: BLE001 - keep watching through outages, with backoff
                problem = f"{type(exc).__name__}: {exc}"
            nw.interrupted += 1
            if nw.events > seen:
                backoff = BACKOFF_FIRST  # it was working until it was cut
            log.warning(
                "watcher: %s: %s; watching again from resourceVersion %s in %.1f s",
                nw.namespace,
                problem[:300],
                nw.resource_version,
                backoff,
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self, kube: Kube, nw: NamespaceWatch) -> None:
        """Every Deployment carrying the service label, handled; then the list's resourceVersion."""
        body = kube.raw(kube.apps.list_namespaced_deployment, nw.namespace, label_selector=nw.cluster.service_label)
        nw.lists += 1
        nw.deployments = {d["metadata"]["name"]: d for d in body.get("items") or []}
        for dep in list(nw.deployments.values()):
            self.handle(nw, dep)
        # Only now: if handling failed (Redis down), the next attempt lists again instead of
        # watching from past Deployments it never handled.
        nw.resource_version = body["metadata"]["resourceVersion"]

    def _follow(self, kube: Kube, nw: NamespaceWatch, stop: threading.Event) -> None:
        """Watch from nw.resource_version until the server ends the stream or `stop` is set."""
        stream = watch.Watch()
        for event in stream.stream(
            kube.apps.list_namespaced_deployment,
            nw.namespace,
            label_selector=nw.cluster.service_label,
            resource_version=nw.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, int(self.watch_seconds)),
            _request_timeout=self.watch_seconds + 10,
        ):
            nw.events += 1
            obj = event["raw_object"]
            name = obj.get("metadata", {}).get("name")
            if event["type"] in ("ADDED", "MODIFIED") and name:
                nw.deployments[name] = obj
                self.handle(nw, obj)
            elif event["type"] == "DELETED" and name:
                nw.deployments.pop(name, None)
            # After handling, not before: if handling raised, the watch resumes from before this
            # event and it comes again (advancing first would lose a Deployment's `available`).
            rv = obj.get("metadata", {}).get("resourceVersion")
            if rv:
                nw.resource_version = rv
            if stop.is_set():
                stream.stop()
                break

    # --- a Deployment seen ----------------------------------------------------------------------------

    def handle(self, nw: NamespaceWatch, dep: dict[str, Any]) -> WatcherStart | None:
        """Start a release if `dep` is a new, available version of a known service."""
        meta = dep.get("metadata", {})
        labels = meta.get("labels") or {}
        service, version = labels.get(nw.cluster.service_label), labels.get(nw.cluster.version_label)
        if not service or not version or not LABEL_VALUE_RE.fullmatch(version):
            return None
        app = next((a for a in nw.applications if a.service(service)), None)
        if app is None or meta.get("deletionTimestamp"):
            return None
        key = (app.name, service, version)
        if key in self._announced or rollout_state(dep)[0] != "available":
            return None
        with self._lock:
            if key in self._announced or not self.acting():
                return None
            return self._announce(nw, app, dep, service, version)

    def _announce(
        self, nw: NamespaceWatch, app: ApplicationConfig, dep: dict[str, Any], service: str, version: str
    ) -> WatcherStart | None:
        key = (app.name, service, version)
        svc = app.service(service)
        assert svc is not None
        stable = self.ctx.store.stable_version(app.name, service) or svc.stable_version
        if version == stable:
            self._announced.add(key)
            return None
        others = [
            d
            for d in nw.deployments.values()
            if (d["metadata"].get("labels") or {}).get(nw.cluster.service_label) == service
            and (d["metadata"].get("labels") or {}).get(nw.cluster.version_label) not in (None, version)
        ]
        by_version = {d["metadata"]["labels"][nw.cluster.version_label]: d for d in others}
        reference = by_version.get(stable) if stable else None

        def reference_version(d: dict[str, Any]) -> str:
            return str(d["metadata"]["labels"][nw.cluster.version_label])

        fallback = None
        if stable is None:
            running = [v for v, d in by_version.items() if rollout_state(d)[0] == "available"]
            if not running:  # the only version running: it is the stable one, not a release
                self._announced.add(key)
                return None
            if len(running) == 1:
                fallback, reference = running[0], by_version[running[0]]
        if reference is not None and _age_key(dep, version) < _age_key(reference, reference_version(reference)):
            # Older than the stable version's Deployment: history (e.g. a failed candidate left in place).
            self._announced.add(key)
            return None
        existing = self.ctx.store.find_dedup(keys.deploy_dedup(app.name, service, version))
        if existing is not None and existing.trigger == "kubernetes":
            self._announced.add(key)  # this watcher (or a previous leader) started it already
            return None
        ci = ci_from_annotations(dep["metadata"].get("annotations") or {})
        try:
            # A fleet's service: the version's first Deployment announces the fleet, whose waves release
            # each cluster in turn (docs/fleets.md); a release per cluster now would skip the waves.
            intake = fleet_intake(self.ctx, service, version, ci, "kubernetes", None) or start_release(
                self.ctx, service, version, application=app.name, ci=ci, trigger="kubernetes", fallback_source=fallback
            )
        except IntakeError as exc:
            log.warning("watcher: %s/%s %s: not released: %s", app.name, service, version, exc)
            if exc.status != 503:  # 503: the router was unreachable; try again on the next event or list
                self._announced.add(key)
            return None
        self._announced.add(key)
        started = WatcherStart(time.time(), app.name, service, version, intake.release.id, intake.created)
        self.started.append(started)
        log.info(
            "watcher: %s/%s %s is available: release %s (%s)",
            app.name,
            service,
            version,
            intake.release.id,
            "started" if intake.created else "already started by a deploy notification",
        )
        return started


def _age_key(dep: dict[str, Any], version: str) -> tuple[float, tuple[int, ...], str]:
    """Which of two Deployments is newer: creation time (whole seconds), then the version as numbers."""
    created = parse_time(dep["metadata"].get("creationTimestamp")) or 0.0
    numbers = tuple(int(n) for n in re.findall(r"\d+", version))
    return created, numbers, version


def run_watcher() -> None:
    """`sluice watcher`: lead or stand by until SIGTERM / Ctrl-C."""
    import signal

    from app.context import get_context

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        Watcher(get_context()).run(stop)
    except KeyboardInterrupt:
        stop.set()
