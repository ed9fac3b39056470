"""Schema validation of what a client writes, as the Kubernetes API server does it.

Built-in kinds (Service, Deployment, Ingress, HorizontalPodAutoscaler, ...) are checked against the
Kubernetes OpenAPI schemas that `kubernetes-validate` bundles (its "-strict" set: every object type
closed, so an unknown field shows). Custom resources are checked against the openAPIV3Schema of their
upstream CustomResourceDefinition, kept verbatim under tests/data/crds/ (README there says where
each comes from). The CRD schemas are OpenAPI 3.0 "structural" schemas; `crd_to_jsonschema` turns
them into JSON Schema 2020-12 for `jsonschema`.

What the real server does and this does too:
- an unknown field is dropped with a `Warning: 299` header (fieldValidation=Warn, the server's
  default), ignored silently under fieldValidation=Ignore, and refused (400 "strict decoding error")
  under fieldValidation=Strict;
- a custom resource that breaks its schema is refused 422 Invalid, one cause per violation, worded
  like k8s.io/apiextensions-apiserver (`spec.x: Invalid value: -1: spec.x in body should be greater
  than or equal to 0`);
- a built-in object whose field has the wrong JSON type is refused 400 (the Go decoder's error);
  a missing required field is 422 `Required value`.
What it does not do: the CEL rules of `x-kubernetes-validations` (no CEL evaluator here), and it
applies no schema defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from tests.support.kube_errors import ApiError, Cause, bad_request, invalid

CRD_DIR = Path(__file__).resolve().parents[1] / "data" / "crds"
# The Kubernetes minor the built-in schemas are taken from: the `kubernetes` client Sluice pins (36.x)
# speaks 1.36's API.
KUBERNETES_VERSION = "1.36"
OBJECT_META = "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# OpenAPI keywords kept as they are (JSON Schema has them with the same meaning).
PLAIN = {
    "type", "required", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
    "maxItems", "minProperties", "maxProperties", "description",
}  # fmt: skip


def _schema_dir() -> str:
    versions = [v for v in kv.all_versions() if kv.major_minor(v) == KUBERNETES_VERSION]
    return f"kubernetes-json-schema/v{versions[-1]}-local-strict"


@cache
def _registry() -> Registry:
    definitions = kv.schema_contents(f"{_schema_dir()}/_definitions.json", KUBERNETES_VERSION)
    return Resource.from_contents(definitions) @ Registry()


# --- CRD openAPIV3Schema -> JSON Schema -------------------------------------------------------------------


def crd_to_jsonschema(schema: dict[str, Any], structural: bool = True) -> dict[str, Any]:
    """One OpenAPI 3.0 structural schema node as JSON Schema. `structural` is False inside
    anyOf/oneOf/allOf/not, whose branches may only add checks on fields declared outside them."""
    out: dict[str, Any] = {k: v for k, v in schema.items() if k in PLAIN}
    if "properties" in schema:
        out["properties"] = {name: crd_to_jsonschema(sub, structural) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = crd_to_jsonschema(schema["items"], structural)
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = crd_to_jsonschema(schema["additionalProperties"], structural)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [crd_to_jsonschema(sub, structural=False) for sub in schema[key]]
    if "not" in schema:
        out["not"] = crd_to_jsonschema(schema["not"], structural=False)
    # OpenAPI 3.0's exclusiveMinimum/Maximum are booleans qualifying minimum/maximum.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if schema.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    # A structural schema prunes what it does not declare: closing the object makes those fields
    # show up as errors, which `admit` turns into pruning (or refusal under Strict).
    is_object = out.get("type") == "object" or "properties" in out
    preserved = schema.get("x-kubernetes-preserve-unknown-fields")
    if structural and is_object and "additionalProperties" not in out and not preserved:
        out["additionalProperties"] = False
    return out


def _crd_schema(crd: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    top = crd_to_jsonschema(version["schema"]["openAPIV3Schema"])
    props = top.setdefault("properties", {})
    # metadata is the server's ObjectMeta for every kind, whatever the CRD says of it.
    props["metadata"] = {"$ref": OBJECT_META}
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return {"$schema": DRAFT, "$id": f"https://kubernetes.io/crd/{group}/{version['name']}/{kind.lower()}", **top}


@cache
def crd_schemas(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> JSON Schema, for every served version of every CRD in `crd_dir`."""
    out = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    out[(crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])] = _crd_schema(
                        crd, version
                    )
    return out


# --- validation --------------------------------------------------------------------------------------------


@cache
def validator(group: str, version: str, kind: str) -> jsonschema.protocols.Validator | None:
    custom = crd_schemas().get((group, version, kind))
    if custom is not None:
        schema = custom
    else:
        short_group = group.split(".")[0]
        file = f"{kind.lower()}-{short_group}-{version}.json" if group else f"{kind.lower()}-{version}.json"
        try:
            schema = kv.schema_contents(f"{_schema_dir()}/{file}", KUBERNETES_VERSION)
        except FileNotFoundError:
            return None
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def field_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
    return out


def _unknown_fields(error: jsonschema.ValidationError) -> list[tuple[list[str | int], str]]:
    declared = set((error.schema.get("properties") or {}) if isinstance(error.schema, dict) else {})
    return [(list(error.absolute_path), k) for k in error.instance if k not in declared]


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _go_type(json_type: Any) -> str:
    types = [json_type] if isinstance(json_type, str) else [t for t in json_type if isinstance(t, str) and t != "null"]
    return {"integer": "int32", "string": "string", "boolean": "bool", "object": "map", "array": "slice"}.get(
        types[0] if types else "", "IntOrString"
    )


def _causes(error: jsonschema.ValidationError) -> list[Cause]:
    """The causes apiextensions-apiserver reports for one schema violation."""
    at = field_path(error.absolute_path)
    v, rule, limit = error.instance, error.validator, error.validator_value
    if rule == "required":
        missing = [r for r in limit if isinstance(v, dict) and r not in v]
        return [Cause(field_path([*error.absolute_path, m]), "FieldValueRequired", "Required value") for m in missing]
    if rule == "enum":
        allowed = ", ".join(_value(x) for x in limit if x is not None)
        return [Cause(at, "FieldValueNotSupported", f"Unsupported value: {_value(v)}: supported values: {allowed}")]
    if rule == "type":
        expected = limit if isinstance(limit, str) else "/".join(t for t in limit if t != "null")
        actual = "null" if v is None else JSON_TYPES.get(type(v), "unknown")
        msg = f"Invalid value: {_value(v)}: {at} in body must be of type {expected}: {_value(actual)}"
        return [Cause(at, "FieldValueTypeInvalid", msg)]
    if rule == "maxLength":
        return [Cause(at, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")]
    if rule == "maxItems":
        return [Cause(at, "FieldValueTooMany", f"Too many: {len(v)}: must have at most {limit} items")]
    wording = {
        "minimum": f"should be greater than or equal to {limit}",
        "maximum": f"should be less than or equal to {limit}",
        "exclusiveMinimum": f"should be greater than {limit}",
        "exclusiveMaximum": f"should be less than {limit}",
        "minLength": f"should be at least {limit} chars long",
        "pattern": f"should match '{limit}'",
        "minItems": f"should have at least {limit} items",
        "oneOf": "must validate one and only one schema (oneOf)",
        "anyOf": "must validate at least one schema (anyOf)",
        "not": "must not validate the schema (not)",
    }.get(str(rule), f"fails {rule}: {error.message}")
    return [Cause(at, "FieldValueInvalid", f"Invalid value: {_value(v)}: {at} in body {wording}")]


def _prune(obj: dict[str, Any], unknown: list[tuple[list[str | int], str]]) -> None:
    for path, key in unknown:
        node: Any = obj
        for part in path:
            node = node[part]
        node.pop(key, None)


def admit(obj: dict[str, Any], group: str, version: str, kind: str, field_validation: str = "Warn") -> list[str]:
    """Check `obj` (apiVersion and kind already the endpoint's) against its kind's schema. Unknown
    fields are pruned from `obj` in place; returns the warnings to send. Raises ApiError for the
    refusals the real server makes. A kind without a schema here is refused: the fake would
    otherwise accept what it cannot check."""
    check = validator(group, version, kind)
    if check is None:
        raise ApiError(500, "InternalError", f"the fake API server has no schema for {group}/{version} {kind}")
    errors = list(check.iter_errors(obj))
    unknown = [u for e in errors if e.validator == "additionalProperties" for u in _unknown_fields(e)]
    named = [f'unknown field "{field_path([*p, k])}"' for p, k in unknown]
    if unknown and field_validation == "Strict":
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: ' + ", ".join(named)
        )
    _prune(obj, unknown)
    errors = list(check.iter_errors(obj)) if unknown else errors
    builtin = (group, version, kind) not in crd_schemas()
    if builtin:
        # A built-in type's OpenAPI `required` means "not omitempty in Go", not "validated": the
        # server's Go validation checks spec fields (mirrored by the schema's `required`) but not what
        # kubelets and controllers write into status.
        errors = [e for e in errors if not (e.validator == "required" and list(e.absolute_path)[:1] == ["status"])]
    if builtin and (wrong := [e for e in errors if e.validator in ("type", "oneOf")]):
        # The Go decoder refuses a built-in object of the wrong shape before validation runs.
        e = wrong[0]
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
            f"{JSON_TYPES.get(type(e.instance), 'value')} into Go struct field "
            f"{kind}.{field_path(e.absolute_path)} of type {_go_type(e.validator_value)}"
        )
    causes: list[Cause] = []
    for error in sorted(errors, key=lambda e: field_path(e.absolute_path)):
        causes += [c for c in _causes(error) if c not in causes]
    if causes:
        raise invalid(kind, group, (obj.get("metadata") or {}).get("name", ""), causes)
    return [] if field_validation == "Ignore" else named
