"""Label selectors and the three PATCH formats of the Kubernetes API, as the fake API server applies
them: JSON patch (RFC 6902), merge patch (RFC 7386) and strategic merge patch (built-in types only).

Strategic merge differs from merge patch on lists: a list whose Go field carries a patchMergeKey
(containers by name, a Service's ports by port, ...) is merged item by item; any other list is
replaced whole (an Ingress's rules, an HPA's metrics), as in merge patch. The merge keys below are
those of the core/apps types, from k8s.io/api's `patchMergeKey` struct tags."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.kube_errors import ApiError, bad_request

# --- label selectors ----------------------------------------------------------------------------------


def _split_selector(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in _split_selector(selector or ""):
        if " notin " in term or " in " in term:
            neg = " notin " in term
            key, _, values = term.partition(" notin " if neg else " in ")
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            present = labels.get(key.strip()) in allowed
            if present == neg:
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


# --- merge patch ----------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, anything else (lists included) is replaced, null deletes."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- strategic merge patch ------------------------------------------------------------------------------

# list field -> merge key; `ports` depends on its owner (a container's or a Service's).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
MERGED_PRIMITIVE_LISTS = {"finalizers"}  # patchStrategy merge on a list of strings: a union


def _merge_key(field: str, path: tuple[str, ...]) -> str | None:
    if field == "ports":
        return "containerPort" if any(p.endswith("ontainers") for p in path) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive is not None:
        raise bad_request(f"strategic merge patch: $patch {directive!r} is not supported here")
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            continue  # only orders a merged list; the items themselves are in the patch
        if k.startswith("$"):
            raise bad_request(f"strategic merge patch: directive {k!r} is not supported by this fake")
        if v is None or (isinstance(v, dict) and v.get("$patch") == "delete"):
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(k, out[k], v, path + (k,))
        else:
            out[k] = strategic_merge_patch(out.get(k), v, path + (k,))
    return out


def _merge_list(field: str, current: list[Any], patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    if field in MERGED_PRIMITIVE_LISTS:
        return current + [v for v in patch if v not in current]
    key = _merge_key(field, path)
    if key is None or not all(isinstance(item, dict) and key in item for item in patch):
        return copy.deepcopy(patch)
    out = [copy.deepcopy(item) for item in current]
    for item in patch:
        at = next((i for i, old in enumerate(out) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                out.pop(at)
        elif at is None:
            out.append(copy.deepcopy(item))
        else:
            out[at] = strategic_merge_patch(out[at], item, path)
    return out


# --- JSON patch -----------------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"replace of missing {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        else:
            raise ApiError(422, "Invalid", f"unsupported op {kind}")
    return doc
