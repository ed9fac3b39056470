"""The fake API server's refusals, as the real one sends them: a `Status` object (kind Status,
status Failure, reason, code, and for 422/403 the `details` the client libraries read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of details.causes: the field path as the API server spells it (spec.rules[0].x)."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def qualified_kind(kind: str, group: str) -> str:
    """`Deployment.apps`, `HTTPRoute.gateway.networking.k8s.io`, plain `Service` for the core group."""
    return f"{kind}.{group}" if group else kind


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid, worded like apimachinery's NewInvalid: one cause inline, several in brackets."""
    rendered = [c.render() for c in causes]
    listed = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = {
        "name": name,
        "group": group,
        "kind": kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    return ApiError(422, "Invalid", f'{qualified_kind(kind, group)} "{name}" is invalid: {listed}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, group: str, resource: str, sub: str | None, name: str | None, ns: str) -> ApiError:
    """403 as the RBAC authorizer words it, e.g. 'deployments.apps "x" is forbidden: User
    "system:serviceaccount:sluice:sluice-web" cannot patch resource "deployments/scale" in API group
    "apps" in the namespace "prod"'."""
    what = f"{resource}.{group}" if group else resource
    subject = f'{what} "{name}"' if name else what
    full = f"{resource}/{sub}" if sub else resource
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}" '
        f'in the namespace "{ns}"'
    )
    details: dict[str, Any] = {"group": group, "kind": resource}
    if name:
        details["name"] = name
    return ApiError(403, "Forbidden", message, details)
