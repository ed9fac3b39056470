"""Replicas of a version: read them, and change them through the `deployments/scale` subresource or
the HorizontalPodAutoscaler (autoscaling/v2) that sizes the Deployment.

Sluice scales only through these two doors, so its RBAC grows by exactly `deployments/scale` patch
and HPA get/patch (integrations/kubernetes/permissions.py SCALE_CALLS). The HPA of a Deployment is
the one named like it (the usual convention; finding it by `scaleTargetRef` would need `list` on
every HPA of the namespace) and whose `scaleTargetRef` names the Deployment. Every write carries
the resourceVersion read and is retried on 409 (objects.read_modify_write), then read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from integrations.kubernetes.cluster import Kube, api_error
from integrations.kubernetes.objects import list_deployments, read_modify_write, version_labels
from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from integrations.kubernetes.config import ClusterConfig
    from integrations.routers.interface import Placement

MERGE = "application/merge-patch+json"


def kube_for(app: Placement) -> Kube:
    """The application's cluster client, shared with cluster health (one per application)."""
    from integrations.kubernetes.health import _kube

    return _kube(app)


@dataclass(frozen=True)
class Replicas:
    """A version's Deployment: its name, the replicas asked for (spec) and the ready ones (status)."""

    deployment: str
    desired: int
    ready: int


@dataclass(frozen=True)
class Autoscaler:
    name: str
    min_replicas: int
    max_replicas: int


def replicas_of(kube: Kube, namespace: str, cluster: ClusterConfig, service: str, version: str) -> Replicas | None:
    """The version's Deployment (the first by name if the labels find several), or None."""
    try:
        deployments = list_deployments(kube, namespace, version_labels(cluster, service, version))
    except Exception as exc:  # noqa: BLE001 - connection errors become retryable RouterErrors
        raise api_error(exc, f"Deployments of {service} {version}") from None
    if not deployments:
        return None
    deployments.sort(key=lambda d: d["metadata"]["name"])
    ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments)
    first = deployments[0]
    return Replicas(first["metadata"]["name"], int(first.get("spec", {}).get("replicas", 1)), ready)


def _autoscaling(kube: Kube) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(kube.api)


def _read_hpa(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.raw(_autoscaling(kube).read_namespaced_horizontal_pod_autoscaler, name, namespace)


def autoscaler_of(kube: Kube, namespace: str, deployment: str) -> Autoscaler | None:
    """The HPA named like the Deployment that targets it, or None."""
    try:
        hpa = _read_hpa(kube, namespace, deployment)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise api_error(exc, f"reading HorizontalPodAutoscaler {namespace}/{deployment}") from None
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc, f"reading HorizontalPodAutoscaler {namespace}/{deployment}") from None
    spec = hpa.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    if target.get("kind") != "Deployment" or target.get("name") != deployment:
        return None  # an HPA of that name for something else: not ours to change
    return Autoscaler(deployment, int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1))


def scale_deployment(kube: Kube, namespace: str, deployment: str, replicas: int, attempts: int = 5) -> int:
    """Set the Deployment's replicas through its scale subresource; returns what it had before."""
    what = f"Deployment {namespace}/{deployment} scale"
    before: list[int] = []

    def read() -> dict[str, Any]:
        # The Deployment itself (RBAC: list, which Sluice has): its resourceVersion is the scale's.
        found = list_deployments_named(kube, namespace, deployment)
        if not found:
            raise ApiException(status=404, reason=f"Deployment {namespace}/{deployment} not found")
        return found[0]

    def mutate(dep: dict[str, Any]) -> dict[str, Any] | None:
        current = int(dep.get("spec", {}).get("replicas", 1))
        before[:] = [current]
        return None if current == replicas else {"spec": {"replicas": replicas}}

    def write(patch: dict[str, Any]) -> None:
        kube.raw(kube.apps.patch_namespaced_deployment_scale, deployment, namespace, patch, _content_type=MERGE)

    read_modify_write(read, mutate, write, what, attempts)
    try:
        after = int(read().get("spec", {}).get("replicas", 1))
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc, f"reading {what}") from None
    if after != replicas:
        raise RouterError(f"{what}: asked for {replicas} replicas, read back {after}", retryable=True)
    return before[0]


def list_deployments_named(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    body = kube.raw(kube.apps.list_namespaced_deployment, namespace, field_selector=f"metadata.name={name}")
    return [d for d in body.get("items") or [] if d.get("metadata", {}).get("name") == name]


def set_min_replicas(kube: Kube, namespace: str, name: str, min_replicas: int, attempts: int = 5) -> int:
    """Set the HPA's minReplicas (never above its maxReplicas); returns what it had before."""
    what = f"HorizontalPodAutoscaler {namespace}/{name}"
    before: list[int] = []

    def read() -> dict[str, Any]:
        return _read_hpa(kube, namespace, name)

    def mutate(hpa: dict[str, Any]) -> dict[str, Any] | None:
        current = int((hpa.get("spec") or {}).get("minReplicas") or 1)
        before[:] = [current]
        return None if current == min_replicas else {"spec": {"minReplicas": min_replicas}}

    def write(patch: dict[str, Any]) -> None:
        api = _autoscaling(kube)
        kube.raw(api.patch_namespaced_horizontal_pod_autoscaler, name, namespace, patch, _content_type=MERGE)

    read_modify_write(read, mutate, write, what, attempts)
    try:
        after = int((read().get("spec") or {}).get("minReplicas") or 1)
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc, f"reading {what}") from None
    if after != min_replicas:
        raise RouterError(f"{what}: asked for minReplicas {min_replicas}, read back {after}", retryable=True)
    return before[0]
