"""The cluster around Sluice in tests: what `kubectl apply` and the controllers would do, written
straight into the fake API server (Sluice itself only ever goes through HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.context import Context
from app.release.scaling import finish
from tests.support.fake_apiserver import FakeApiServer
from workers.tick import tick
from workers.watcher import Watcher

NS = "prod"
GW = ("gateway.networking.k8s.io", "httproutes")
CONTOUR = ("projectcontour.io", "httpproxies")
ING = ("networking.k8s.io", "ingresses")


def dep_name(service: str, version: str) -> str:
    return f"{service}-{version}".replace(".", "-")


@dataclass
class Sim:
    api: FakeApiServer
    ns: str = NS
    service_label: str = "app"
    version_label: str = "version"
    available_at: dict[str, float] = field(default_factory=dict)

    def labels(self, service: str, version: str) -> dict[str, str]:
        return {self.service_label: service, self.version_label: version}

    def deployment(
        self,
        service: str,
        version: str,
        replicas: int = 2,
        available: bool = True,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        name = dep_name(service, version)
        labels = self.labels(service, version)
        image = f"registry.example.com/{service}:{version}"
        dep = self.api.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": self.ns, "labels": labels, "annotations": annotations or {}},
                "spec": {
                    "replicas": replicas,
                    "progressDeadlineSeconds": 600,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "app", "image": image}]},
                    },
                },
            }
        )
        for i in range(replicas):
            self.api.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{name}-{i}", "namespace": self.ns, "labels": labels},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                    "status": {"containerStatuses": [{"name": "app", "ready": True, "restartCount": 0}]},
                }
            )
        if available:
            self.make_available(service, version)
        return dep

    def make_available(self, service: str, version: str) -> float:
        def change(dep: dict[str, Any]) -> None:
            n = dep["spec"]["replicas"]
            dep["status"] = {
                "observedGeneration": dep["metadata"]["generation"],
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ],
            }

        self.api.mutate("apps", "deployments", self.ns, dep_name(service, version), change)
        self.available_at[version] = time.time()
        return self.available_at[version]

    def deadline_exceeded(self, service: str, version: str) -> None:
        def change(dep: dict[str, Any]) -> None:
            dep["status"]["conditions"] = [
                {"type": "Available", "status": "True"},
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{dep["metadata"]["name"]}-7d9f" has timed out progressing.',
                },
            ]

        self.api.mutate("apps", "deployments", self.ns, dep_name(service, version), change)

    def restart(self, service: str, version: str, times: int = 1, pod: int = 0) -> None:
        def change(p: dict[str, Any]) -> None:
            p["status"]["containerStatuses"][0]["restartCount"] += times
            p["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1}}

        self.api.mutate("", "pods", self.ns, f"{dep_name(service, version)}-{pod}", change)

    def unready(self, service: str, version: str, pod: int = 0) -> None:
        """The pod's readiness probe fails now (its Ready condition turns False)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def change(p: dict[str, Any]) -> None:
            p["status"]["containerStatuses"][0]["ready"] = False
            p["status"]["conditions"] = [{"type": "Ready", "status": "False", "lastTransitionTime": now}]

        self.api.mutate("", "pods", self.ns, f"{dep_name(service, version)}-{pod}", change)

    def root_service(self, service: str, port: int = 8080) -> None:
        self.api.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": self.ns},
                "spec": {"selector": {self.service_label: service}, "ports": [{"port": port}]},
            }
        )

    def httproute(self, name: str, service: str, port: int = 8080) -> None:
        self.api.apply(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": self.ns, "annotations": {"team": "shop"}},
                "spec": {
                    "parentRefs": [{"name": "public", "namespace": "gateways"}],
                    "hostnames": ["shop.example.com"],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                            "backendRefs": [{"name": "cdn-proxy", "port": 80}],
                        },
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": service, "port": port}],
                        },
                    ],
                },
            }
        )

    def httpproxy(self, name: str, service: str, port: int = 8080) -> None:
        self.api.apply(
            {
                "apiVersion": "projectcontour.io/v1",
                "kind": "HTTPProxy",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": {
                    "virtualhost": {"fqdn": "shop.example.com"},
                    "routes": [
                        {"conditions": [{"prefix": "/static"}], "services": [{"name": "cdn-proxy", "port": 80}]},
                        {
                            "conditions": [{"prefix": "/"}],
                            "services": [{"name": service, "port": port}],
                            "timeoutPolicy": {"response": "5s"},
                        },
                    ],
                },
            }
        )

    def ingress(self, name: str, service: str, port: int = 8080) -> None:
        self.api.apply(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": name,
                    "namespace": self.ns,
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
                },
                "spec": {
                    "ingressClassName": "nginx",
                    "rules": [
                        {
                            "host": "shop.example.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": service, "port": {"number": port}}},
                                    }
                                ]
                            },
                        }
                    ],
                },
            }
        )

    def weights_history(self, plural: str, name: str) -> list[Any]:
        return [w.body for w in self.api.writes_to(plural, name)]


class Engine(threading.Thread):
    """The scheduler and a worker in one thread: run every due tick and replicas work (what RQ would do)."""

    def __init__(self, ctx: Context):
        super().__init__(daemon=True, name="engine")
        self.ctx = ctx
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                for member in self.ctx.store.claim_due(time.time(), lease=5.0):
                    kind, _, rest = member.partition(":")
                    if kind == "tick":
                        rid, _, seq = rest.rpartition(":")
                        tick(self.ctx, rid, int(seq))
                    elif kind == "scale":
                        finish(self.ctx, rest, time.time())
            except BaseException as exc:  # noqa: BLE001 - surfaced by the test
                self.errors.append(exc)
            self.stopping.wait(0.02)


@contextmanager
def running_watcher(ctx: Context, watch_seconds: float = 2.0, leader_ttl: float = 1.0) -> Iterator[Watcher]:
    watcher = Watcher(ctx, watch_seconds=watch_seconds, leader_ttl=leader_ttl)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(timeout=watch_seconds + 15)


@contextmanager
def running_engine(ctx: Context) -> Iterator[Engine]:
    engine = Engine(ctx)
    engine.start()
    try:
        yield engine
    finally:
        engine.stopping.set()
        engine.join(timeout=30)
        assert not engine.errors, engine.errors


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
