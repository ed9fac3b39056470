"""Whether NetworkPolicies admit a connection, by the rules of the networking.k8s.io/v1 API
(https://kubernetes.io/docs/concepts/services-networking/network-policies/): a pod no Ingress
policy selects takes everything; a selected pod takes only what one of its policies' rules admits
(peer and port). Only the parts deploy/ uses are understood; anything else fails the test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer(peer: dict[str, Any], source: Pod, policy_namespace: str) -> bool:
    assert set(peer) <= {"podSelector", "namespaceSelector"}, f"not understood here: {peer}"
    if "namespaceSelector" in peer:
        # every namespace carries kubernetes.io/metadata.name (Kubernetes >= 1.22)
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": source.namespace}):
            return False
    elif source.namespace != policy_namespace:
        return False  # a podSelector alone selects pods of the policy's own namespace
    return selects(peer.get("podSelector") or {}, source.labels)


def _port(ports: list[dict[str, Any]] | None, port: int) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports)


def admitted(policies: list[dict[str, Any]], source: Pod, target: Pod, port: int) -> bool:
    """Whether a TCP connection from `source` to `target`:`port` is let in."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], target.labels)
    ]
    if not selecting:
        return True
    return any(
        _port(rule.get("ports"), port)
        and (not rule.get("from") or any(_peer(peer, source, p["metadata"]["namespace"]) for peer in rule["from"]))
        for p in selecting
        for rule in p["spec"].get("ingress") or []
    )
