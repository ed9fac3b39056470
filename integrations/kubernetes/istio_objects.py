"""The Istio router's reads and writes: the service's VirtualService and, with `destinations: subsets`,
the subsets of its DestinationRule (`networking.istio.io/v1`, raw dicts).

A missing object is a RouterError that says how to fix it. Sluice adds a version's missing subset,
named after the version as a DNS-1123 label, and never removes subsets; it does not create the
DestinationRule (a new one for the host would replace the mesh's or namespace's traffic policy for
it, mTLS mode included, which is the owner's choice to make).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.cluster import api_error, label_selector, status_of
from integrations.kubernetes.istio_routes import host_service, subset_name, subset_versions
from integrations.kubernetes.objects import list_deployments, read_modify_write, version_labels
from integrations.routers.interface import RouterError

if TYPE_CHECKING:
    from app.core.config.services import ServiceConfig
    from integrations.kubernetes.router_base import KubernetesRouter

GROUP, VERSION = "networking.istio.io", "v1"


def first_then(first: dict[str, Any], again: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """A read for read_modify_write: the (checked) object already read, then fresh reads on a conflict."""
    pending = [first]
    return lambda: pending.pop() if pending else again()


class IstioObjects:
    """The Istio objects of a router's namespace, read and written through the router's cluster client."""

    def __init__(self, router: KubernetesRouter):
        self.router = router
        self.namespace = router.namespace

    def get(self, plural: str, name: str) -> dict[str, Any]:
        kube = self.router.kube
        return kube.custom_call(kube.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name)

    def checked(self, plural: str, name: str, what: str, fix: str) -> dict[str, Any]:
        """The object, or a RouterError that says what is missing and how to fix it."""
        try:
            return self.get(plural, name)
        except Exception as exc:  # noqa: BLE001 - connection errors become retryable RouterErrors
            if status_of(exc) == 404:
                raise RouterError(f"{what} not found: {fix}", retryable=False) from None
            raise api_error(exc, f"reading {what}") from None

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        # CustomObjectsApi sends a dict body as application/merge-patch+json.
        kube = self.router.kube
        kube.custom_call(
            kube.custom.patch_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name, patch
        )

    # --- the service's DestinationRule (destinations: subsets) ------------------------------------------

    def rule_what(self, svc: ServiceConfig) -> str:
        return f"DestinationRule {self.namespace}/{svc.name}"

    def read_rule(self, svc: ServiceConfig) -> dict[str, Any]:
        fix = (
            f"with `destinations: subsets` Sluice adds a subset per version to the DestinationRule of "
            f"host {svc.name!r}, named like the service, but does not create it (it would replace the "
            "host's traffic policy, mTLS included); create it, or use `destinations: hosts`"
        )
        rule = self.checked("destinationrules", svc.name, self.rule_what(svc), fix)
        host = str(rule.get("spec", {}).get("host", ""))
        if host_service(host, self.namespace) != svc.name:
            raise RouterError(
                f"{self.rule_what(svc)} is for host {host!r}, not the service {svc.name!r}", retryable=False
            )
        return rule

    def known_subsets(self, svc: ServiceConfig, rule: dict[str, Any]) -> dict[str, str]:
        subsets = rule.get("spec", {}).get("subsets") or []
        cluster = self.router.cluster
        return subset_versions(subsets, cluster.version_label, cluster.service_label, svc.name)

    def ensure_subsets(self, svc: ServiceConfig, versions: list[str]) -> dict[str, str]:
        """Every subset of the DestinationRule that is a version's: subset name -> version, after adding
        the missing ones for `versions` (others' subsets and fields kept)."""
        known: dict[str, str] = {}
        version_label = self.router.cluster.version_label

        def mutate(rule: dict[str, Any]) -> dict[str, Any] | None:
            subsets = copy.deepcopy(rule.get("spec", {}).get("subsets") or [])
            known.clear()
            known.update(self.known_subsets(svc, rule))
            taken = {str(s.get("name")) for s in subsets}
            for version in versions:
                if version not in known.values():
                    name = subset_name(version, taken)
                    subsets.append({"name": name, "labels": {version_label: version}})
                    taken.add(name)
                    known[name] = version
            if subsets == (rule.get("spec", {}).get("subsets") or []):
                return None
            return {"spec": {"subsets": subsets}}

        read_modify_write(
            first_then(self.read_rule(svc), lambda: self.get("destinationrules", svc.name)),
            mutate,
            lambda p: self.patch("destinationrules", svc.name, p),
            self.rule_what(svc),
            self.router.attempts,
        )
        return known

    def ensure_deployments(self, svc: ServiceConfig, versions: list[str]) -> None:
        """A subset of a version without pods would take its share of traffic and answer 503."""
        for version in versions:
            labels = version_labels(self.router.cluster, svc.name, version)
            try:
                found = list_deployments(self.router.kube, self.namespace, labels)
            except Exception as exc:  # noqa: BLE001
                raise api_error(exc, f"Deployments of {svc.name} {version}") from None
            if not found:
                raise RouterError(
                    f"no Deployment labelled {label_selector(labels)} in namespace {self.namespace}",
                    retryable=False,
                )
