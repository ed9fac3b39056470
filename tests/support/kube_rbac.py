"""Kubernetes RBAC, evaluated as the API server's RBAC authorizer does (k8s.io/kubernetes
plugin/pkg/auth/authorizer/rbac): a request (user, verb, API group, resource[/subresource], name,
namespace) is allowed when some rule of some Role or ClusterRole bound to the user (by a RoleBinding
in the request's namespace, or a ClusterRoleBinding) matches every attribute. Nothing is denied
explicitly: RBAC only adds permissions.

The rules come from real manifests (deploy/rbac.yaml), so a test that passes through this proves
the shipped RBAC lets Sluice make its calls, and one that is refused proves it does not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RBAC_YAML = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Request:
    """The authorization attributes of one API request."""

    user: str
    verb: str  # get list watch create update patch delete deletecollection
    group: str
    resource: str
    subresource: str | None = None
    name: str | None = None
    namespace: str | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups the authenticator gives a service account's token."""
        if not self.user.startswith(SA_PREFIX):
            return ("system:authenticated",)
        ns = self.user[len(SA_PREFIX) :].split(":")[0]
        return ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")


def service_account_user(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def rule_matches(rule: dict[str, Any], req: Request) -> bool:
    if not ({"*", req.verb} & set(rule.get("verbs") or [])):
        return False
    if not ({"*", req.group} & set(rule.get("apiGroups") or [])):
        return False
    combined = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    resources = set(rule.get("resources") or [])
    if not ({"*", combined} & resources or (req.subresource and f"*/{req.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or req.name in names


class Rbac:
    def __init__(self, docs: list[dict[str, Any]]):
        self.docs = [d for d in docs if d]
        self.cluster_roles = {d["metadata"]["name"]: d for d in self.docs if d["kind"] == "ClusterRole"}
        self.roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in self.docs if d["kind"] == "Role"}
        self.role_bindings = [d for d in self.docs if d["kind"] == "RoleBinding"]
        self.cluster_role_bindings = [d for d in self.docs if d["kind"] == "ClusterRoleBinding"]

    @classmethod
    def from_manifest(cls, path: Path = RBAC_YAML, app_namespaces: tuple[str, ...] = ()) -> Rbac:
        """The manifest's objects, its RoleBindings repeated into each of `app_namespaces` (the
        manifest's own instruction: one RoleBinding per application namespace)."""
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        extra = []
        for binding in (d for d in docs if d["kind"] == "RoleBinding"):
            for ns in app_namespaces:
                if ns != binding["metadata"].get("namespace"):
                    copy = yaml.safe_load(yaml.safe_dump(binding))
                    copy["metadata"]["namespace"] = ns
                    extra.append(copy)
        return cls(docs + extra)

    def service_accounts(self) -> list[tuple[str, str]]:
        return [
            (d["metadata"].get("namespace", "default"), d["metadata"]["name"])
            for d in self.docs
            if d["kind"] == "ServiceAccount"
        ]

    @staticmethod
    def _binds(binding: dict[str, Any], req: Request) -> bool:
        for subject in binding.get("subjects") or []:
            kind, name = subject.get("kind"), subject.get("name")
            if kind == "User" and name == req.user:
                return True
            if kind == "Group" and name in req.groups:
                return True
            if kind == "ServiceAccount":
                # A RoleBinding's ServiceAccount subject without a namespace is in the binding's.
                ns = subject.get("namespace") or binding["metadata"].get("namespace", "")
                if req.user == service_account_user(ns, name):
                    return True
        return False

    def _role_rules(self, ref: dict[str, Any], namespace: str | None) -> list[dict[str, Any]]:
        if ref.get("kind") == "Role":
            role = self.roles.get((namespace or "", ref["name"]))
            return list((role or {}).get("rules") or [])
        role = self.cluster_roles.get(ref["name"])
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        # An aggregated ClusterRole has the rules of every ClusterRole its selectors match.
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            wanted = selector.get("matchLabels") or {}
            for other in self.cluster_roles.values():
                labels = other["metadata"].get("labels") or {}
                if other is not role and all(labels.get(k) == v for k, v in wanted.items()):
                    rules += other.get("rules") or []
        return rules

    def grants(self, req: Request) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(binding, rule) for every rule that applies to the request's user there."""
        for binding in self.cluster_role_bindings:
            if self._binds(binding, req):
                for rule in self._role_rules(binding["roleRef"], None):
                    yield binding, rule
        if req.namespace:
            for binding in self.role_bindings:
                if binding["metadata"].get("namespace") == req.namespace and self._binds(binding, req):
                    for rule in self._role_rules(binding["roleRef"], req.namespace):
                        yield binding, rule

    def allows(self, req: Request) -> tuple[bool, str]:
        """Whether RBAC allows the request, and the authorizer's reason (which binding allowed it)."""
        for binding, rule in self.grants(req):
            if rule_matches(rule, req):
                where = binding["metadata"].get("namespace")
                named = f'{binding["kind"]} "{binding["metadata"]["name"]}' + (f'/{where}"' if where else '"')
                return True, f'RBAC: allowed by {named} of {binding["roleRef"]["kind"]} "{binding["roleRef"]["name"]}"'
        return False, ""


def default_service_account(rbac: Rbac, preferred: str = "sluice-worker") -> tuple[str, str]:
    """The account the fake authenticates Sluice's token as: the worker's (the process that writes
    routes) when the manifest has one, else the manifest's only ServiceAccount."""
    accounts = rbac.service_accounts()
    for ns, name in accounts:
        if name == preferred:
            return ns, name
    if len(accounts) == 1:
        return accounts[0]
    raise ValueError(f"cannot choose a service account among {accounts}: name one")
