"""The validation the real API server runs in Go after decoding, which no OpenAPI schema states:
object names, label and annotation syntax, and the per-kind rules of the built-in kinds Sluice
creates or changes (Service, Deployment and Pod, Ingress, HorizontalPodAutoscaler). The wording of
each cause is apimachinery's (k8s.io/apimachinery/pkg/util/validation), so a refusal reads like one
from a cluster. Only the rules reachable from what Sluice and the tests write are here."""

from __future__ import annotations

import re
from typing import Any

from tests.support.kube_errors import Cause, invalid

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
IANA_SVC_NAME = r"[a-z0-9]([a-z0-9-]*[a-z0-9])*"

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{DNS1123_SUBDOMAIN}')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    f"character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    f"validation is '{DNS1035_LABEL}')"
)
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    f"end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    f"'{DNS1123_LABEL}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    f"start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    f"for validation is '{LABEL_VALUE}')"
)
QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    f"alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    f"'{QUALIFIED_NAME}')"
)
# Services need DNS-1035 labels (their names become DNS names); everything else a DNS-1123 subdomain.
NAME_RULES = {"Service": (DNS1035_LABEL, 63, DNS1035_MSG)}
TOTAL_ANNOTATION_BYTES = 256 * 1024


def _q(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)


def bad(field: str, value: Any, why: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f"Invalid value: {_q(value)}: {why}")


def required(field: str, why: str = "") -> Cause:
    return Cause(field, "FieldValueRequired", "Required value" + (f": {why}" if why else ""))


def dns_name(field: str, value: str, pattern: str, limit: int, msg: str) -> list[Cause]:
    out = []
    if len(value) > limit:
        out.append(bad(field, value, f"must be no more than {limit} characters"))
    if not re.fullmatch(pattern, value):
        out.append(bad(field, value, msg))
    return out


def qualified_key(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    out = []
    if prefix and (len(prefix) > 253 or not re.fullmatch(DNS1123_SUBDOMAIN, prefix)):
        out.append(bad(field, key, "prefix part " + SUBDOMAIN_MSG))
    if len(name) > 63 or not re.fullmatch(QUALIFIED_NAME, name):
        out.append(bad(field, key, QUALIFIED_MSG))
    return out


def labels(field: str, values: dict[str, Any] | None) -> list[Cause]:
    out = []
    for key, value in (values or {}).items():
        out += qualified_key(field, key)
        if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(LABEL_VALUE, value):
            out.append(bad(f"{field}", value, LABEL_VALUE_MSG))
    return out


def metadata(kind: str, meta: dict[str, Any]) -> list[Cause]:
    name = meta.get("name") or ""
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    pattern, limit, msg = NAME_RULES.get(kind, (DNS1123_SUBDOMAIN, 253, SUBDOMAIN_MSG))
    out = dns_name("metadata.name", name, pattern, limit, msg)
    out += labels("metadata.labels", meta.get("labels"))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        out += qualified_key("metadata.annotations", key)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > TOTAL_ANNOTATION_BYTES:
        out.append(Cause("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"))
    return out


def port_number(field: str, port: Any) -> list[Cause]:
    ok = isinstance(port, int) and 1 <= port <= 65535
    return [] if ok else [bad(field, port, "must be between 1 and 65535, inclusive")]


def service(spec: dict[str, Any]) -> list[Cause]:
    out = labels("spec.selector", spec.get("selector"))
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        out.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            out.append(required(f"{at}.name"))
        elif name:
            out += dns_name(f"{at}.name", name, DNS1123_LABEL, 63, DNS1123_LABEL_MSG)
            if name in names:
                out.append(Cause(f"{at}.name", "FieldValueDuplicate", f"Duplicate value: {_q(name)}"))
            names.add(name)
        out += port_number(f"{at}.port", port.get("port"))
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            out.append(
                Cause(
                    f"{at}.protocol",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_q(port["protocol"])}: supported values: "SCTP", "TCP", "UDP"',
                )
            )
        target = port.get("targetPort")
        if isinstance(target, int):
            out += port_number(f"{at}.targetPort", target)
        elif isinstance(target, str) and (len(target) > 15 or not re.fullmatch(IANA_SVC_NAME, target)):
            out.append(
                bad(
                    f"{at}.targetPort", target, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
                )
            )
    return out


def containers(field: str, pod_spec: dict[str, Any]) -> list[Cause]:
    items = pod_spec.get("containers") or []
    if not items:
        return [required(field)]
    out = []
    for i, container in enumerate(items):
        out += dns_name(f"{field}[{i}].name", container.get("name") or "", DNS1123_LABEL, 63, DNS1123_LABEL_MSG)
        if not container.get("image"):
            out.append(required(f"{field}[{i}].image"))
    return out


def deployment(spec: dict[str, Any]) -> list[Cause]:
    out = []
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, int) and replicas < 0:
        out.append(bad("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        out.append(required("spec.selector"))
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    if any(template_labels.get(k) != v for k, v in selector.items()):
        out.append(bad("spec.template.metadata.labels", template_labels, "`selector` does not match template `labels`"))
    return out + containers("spec.template.spec.containers", template.get("spec") or {})


def ingress(spec: dict[str, Any]) -> list[Cause]:
    out = []
    for i, rule in enumerate(spec.get("rules") or []):
        host = rule.get("host")
        if host and not re.fullmatch(rf"(\*\.)?{DNS1123_SUBDOMAIN}", host):
            out.append(bad(f"spec.rules[{i}].host", host, SUBDOMAIN_MSG))
        for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
            at = f"spec.rules[{i}].http.paths[{j}]"
            if path.get("pathType") in ("Exact", "Prefix") and not str(path.get("path", "")).startswith("/"):
                out.append(bad(f"{at}.path", path.get("path", ""), "must be an absolute path"))
            out += _ingress_backend(f"{at}.backend", path.get("backend") or {})
    if spec.get("defaultBackend"):
        out += _ingress_backend("spec.defaultBackend", spec["defaultBackend"])
    return out


def _ingress_backend(field: str, backend: dict[str, Any]) -> list[Cause]:
    if ("service" in backend) == ("resource" in backend):
        return [bad(field, "", "cannot set both resource and service backends")] if backend else [required(field)]
    svc = backend.get("service")
    if svc is None:
        return []
    out = dns_name(f"{field}.service.name", svc.get("name") or "", DNS1035_LABEL, 63, DNS1035_MSG)
    port = svc.get("port") or {}
    if ("name" in port) == ("number" in port):
        out.append(bad(f"{field}.service.port", port, "cannot set both port name & port number"))
    elif "number" in port:
        out += port_number(f"{field}.service.port.number", port["number"])
    return out


def hpa(spec: dict[str, Any]) -> list[Cause]:
    out = []
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        out.append(bad("spec.minReplicas", low, "must be greater than or equal to 1"))
    if isinstance(high, int) and high < 1:
        out.append(bad("spec.maxReplicas", high, "must be greater than 0"))
    if isinstance(low, int) and isinstance(high, int) and high < low:
        out.append(bad("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    ref = spec.get("scaleTargetRef") or {}
    for field in ("kind", "name"):
        if not ref.get(field):
            out.append(required(f"spec.scaleTargetRef.{field}"))
    return out


KIND_RULES = {
    ("", "Service"): service,
    ("apps", "Deployment"): deployment,
    ("", "Pod"): lambda spec: containers("spec.containers", spec),
    ("networking.k8s.io", "Ingress"): ingress,
    ("autoscaling", "HorizontalPodAutoscaler"): hpa,
}


def check(obj: dict[str, Any], group: str, kind: str) -> None:
    """Raise the 422 the real server would answer for `obj`, if any rule here is broken."""
    causes = metadata(kind, obj.get("metadata") or {})
    rule = KIND_RULES.get((group, kind))
    if rule is not None:
        causes += rule(obj.get("spec") or {})
    if causes:
        raise invalid(kind, group, (obj.get("metadata") or {}).get("name", ""), causes)
