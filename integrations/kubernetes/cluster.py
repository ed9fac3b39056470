"""Talking to a cluster: one API client per (in-cluster, kubeconfig, context), shared by the routers,
the watcher and cluster health. Every call has a timeout; results are plain JSON dicts (raw bodies),
so fields Sluice does not know about survive a read-modify-write untouched.

The kubernetes client is imported when a client is first built, not with this module: the router
modules import this one, the registry imports them, and loading a configuration (every process,
the CLI included) should not pay for the client until a router talks to a cluster."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from integrations.kubernetes.config import ClusterConfig

log = logging.getLogger("sluice.kubernetes")

MANAGED_BY = {"app.kubernetes.io/managed-by": "sluice"}
SERVICE_LABEL = "sluice.io/service"
VERSION_LABEL = "sluice.io/version"

_clients: dict[tuple[bool, str | None, str | None], client.ApiClient] = {}
_clients_lock = threading.Lock()


def api_client(cluster: ClusterConfig) -> client.ApiClient:
    """The cluster's API client: in-cluster first when asked (falling back to the kubeconfig), else kubeconfig."""
    key = (cluster.in_cluster, cluster.kubeconfig, cluster.context)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _build(cluster)
        return _clients[key]


def forget_clients() -> None:
    """Drop cached clients (tests point the same kubeconfig path at a new server)."""
    with _clients_lock:
        _clients.clear()


def _build(cluster: ClusterConfig) -> client.ApiClient:
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    if cluster.in_cluster:
        try:
            conf = client.Configuration()
            kube_config.load_incluster_config(client_configuration=conf)
            return client.ApiClient(conf)
        except ConfigException as exc:
            log.info("not running in a cluster (%s); using the kubeconfig", exc)
    try:
        return kube_config.new_client_from_config(
            config_file=cluster.kubeconfig, context=cluster.context, persist_config=False
        )
    except (ConfigException, OSError, TypeError) as exc:
        where = cluster.kubeconfig or "$KUBECONFIG / ~/.kube/config"
        ctx = f" context {cluster.context!r}" if cluster.context else ""
        raise RouterError(f"cannot load the kubeconfig {where}{ctx}: {exc}", retryable=False) from None


class Kube:
    """Thin helpers over the official client for one cluster, returning raw JSON dicts."""

    def __init__(self, cluster: ClusterConfig):
        from kubernetes import client

        self.cluster = cluster
        self.timeout = cluster.timeout
        self.api = api_client(cluster)
        self.apps = client.AppsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.net = client.NetworkingV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def raw(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call a client method without model deserialisation and return the JSON body."""
        resp = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        try:
            return json.loads(resp.data)
        finally:
            resp.release_conn()

    def custom_call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = method(*args, _request_timeout=self.timeout, **kwargs)
        return dict(result)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a Kubernetes API error (0 when it had none); None for anything else, such as a
    connection error. Lets a caller tell 404 or 409 apart without importing the client at the top."""
    from kubernetes.client.rest import ApiException

    return (exc.status or 0) if isinstance(exc, ApiException) else None


def api_error(exc: Exception, what: str) -> RouterError:
    """A RouterError that says what failed and whether retrying can help."""
    from kubernetes.client.rest import ApiException

    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason = _status_message(exc)
        if status == 404:
            return RouterError(f"{what}: not found ({reason})", retryable=False)
        if status in (401, 403):
            return RouterError(
                f"{what}: the Kubernetes API refused Sluice ({status} {reason}); check its RBAC (deploy/rbac.yaml)",
                retryable=False,
            )
        if status in (400, 422):
            return RouterError(f"{what}: the Kubernetes API rejected the change ({status} {reason})", retryable=False)
        return RouterError(f"{what}: Kubernetes API error {status} ({reason})", retryable=True)
    return RouterError(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})", retryable=True)


def _status_message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        return str(json.loads(body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())
