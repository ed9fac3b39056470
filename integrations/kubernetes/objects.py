"""Deployments (found by the service/version labels, judged like `kubectl rollout status`) and the
per-version Services Sluice routes to, plus the read-modify-write loop every router write goes through."""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.cluster import (
    MANAGED_BY,
    SERVICE_LABEL,
    VERSION_LABEL,
    Kube,
    api_error,
    label_selector,
    status_of,
)
from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from integrations.kubernetes.config import ClusterConfig


def version_service_name(service: str, version: str) -> str:
    """A DNS-1035 name for the Service selecting one version: `web-1-2-3` (hashed when too long)."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{service}-{version}".lower()).strip("-")
    if not base[:1].isalpha():
        base = "v-" + base
    if len(base) > 63:
        digest = hashlib.sha256(f"{service}\0{version}".encode()).hexdigest()[:8]
        base = base[:54].rstrip("-") + "-" + digest
    return base


def version_service_prefix(service: str) -> str:
    """What every `version_service_name(service, ...)` starts with (`web-`)."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{service}-".lower()).lstrip("-")
    if not base[:1].isalpha():
        base = "v-" + base
    return base[:53]


def service_exists(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.raw(kube.core.read_namespaced_service, name, namespace)
        return True
    except Exception as exc:  # noqa: BLE001 - connection errors become retryable RouterErrors
        if status_of(exc) == 404:
            return False
        raise api_error(exc, f"reading Service {namespace}/{name}") from None


def version_labels(cluster: ClusterConfig, service: str, version: str | None = None) -> dict[str, str]:
    labels = {cluster.service_label: service}
    if version is not None:
        labels[cluster.version_label] = version
    return labels


def list_deployments(kube: Kube, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    body = kube.raw(kube.apps.list_namespaced_deployment, namespace, label_selector=label_selector(labels))
    return list(body.get("items") or [])


def rollout_state(dep: dict[str, Any]) -> tuple[str, str]:
    """('available' | 'progressing' | 'failed', detail), as `kubectl rollout status` judges a Deployment."""
    meta, spec, status = dep.get("metadata", {}), dep.get("spec", {}), dep.get("status") or {}
    name = meta.get("name", "?")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"Deployment {name}: ProgressDeadlineExceeded ({cond.get('message', '')})".rstrip(" ()")
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "progressing", f"Deployment {name}: waiting for the controller to observe generation"
    if desired == 0:
        return "progressing", f"Deployment {name}: scaled to 0"
    if updated < desired:
        return "progressing", f"Deployment {name}: {updated} of {desired} replicas updated"
    if total > updated:
        return "progressing", f"Deployment {name}: {total - updated} old replicas pending termination"
    if available < updated:
        return "progressing", f"Deployment {name}: {available} of {updated} updated replicas available"
    return "available", f"Deployment {name}: {available}/{desired} available"


def owned_services(kube: Kube, namespace: str, service: str) -> dict[str, str]:
    """Sluice's per-version Services of a service: Service name -> version."""
    body = kube.raw(
        kube.core.list_namespaced_service, namespace, label_selector=label_selector({SERVICE_LABEL: service})
    )
    out = {}
    for item in body.get("items") or []:
        meta = item.get("metadata", {})
        version = (meta.get("labels") or {}).get(VERSION_LABEL)
        if version:
            out[meta["name"]] = version
    return out


def ensure_version_service(kube: Kube, namespace: str, svc: ServiceConfig, version: str) -> str:
    """The Service selecting exactly this version's pods (created if missing, owned by its Deployment)."""
    cluster = kube.cluster
    name = version_service_name(svc.name, version)
    what = f"Service {namespace}/{name}"
    try:
        existing = kube.raw(kube.core.read_namespaced_service, name, namespace)
    except Exception as exc:  # noqa: BLE001 - connection errors become retryable RouterErrors
        if status_of(exc) != 404:
            raise api_error(exc, what) from None
        existing = None
    if existing is not None:
        owner = (existing.get("metadata", {}).get("labels") or {}).get(VERSION_LABEL)
        if owner not in (None, version):
            raise RouterError(f"{what} exists for version {owner!r}, not {version!r}", retryable=False)
        return name
    try:
        deployments = list_deployments(kube, namespace, version_labels(cluster, svc.name, version))
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc, f"Deployments of {svc.name} {version}") from None
    if not deployments:
        raise RouterError(
            f"no Deployment labelled {label_selector(version_labels(cluster, svc.name, version))} "
            f"in namespace {namespace}",
            retryable=False,
        )
    dep = deployments[0]["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, SERVICE_LABEL: svc.name, VERSION_LABEL: version},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": dep["name"],
                    "uid": dep["uid"],
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "selector": version_labels(cluster, svc.name, version),
            "ports": [{"name": "http", "port": svc.port, "targetPort": svc.port, "protocol": "TCP"}],
        },
    }
    try:
        kube.raw(kube.core.create_namespaced_service, namespace, body)
    except Exception as exc:  # noqa: BLE001
        if status_of(exc) != 409:  # 409: created meanwhile (another tick) - fine
            raise api_error(exc, f"creating {what}") from None
    return name


def read_modify_write(
    read: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
    write: Callable[[dict[str, Any]], Any],
    what: str,
    attempts: int = 5,
) -> bool:
    """Optimistic concurrency: read, compute a patch (None: nothing to change), write it with the
    resourceVersion that was read. A 409 (someone wrote in between) means: re-read, re-apply, retry
    after a short jittered backoff. Returns whether anything was written."""
    for attempt in range(attempts):
        try:
            current = read()
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc, f"reading {what}") from None
        patch = mutate(current)
        if patch is None:
            return False
        patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            write(patch)
            return True
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) != 409:
                raise api_error(exc, f"writing {what}") from None
        time.sleep(min(1.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
    raise RouterError(f"{what} kept changing under Sluice ({attempts} conflicts in a row); will retry", retryable=True)
