"""A container's environment and probe commands as the kubelet makes them from a pod spec: envFrom
first, then `env` in order, `$(VAR)` expanded from what is defined so far (`$$` is a literal `$`,
an unknown reference stays as written), Secret and ConfigMap values looked up in the rendered
objects. Lets a test run a manifest's command for real, with the values a pod would get."""

from __future__ import annotations

import base64
from typing import Any


def expand(text: str, env: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _data(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def container_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            values = _data(objects, "ConfigMap", source["configMapRef"]["name"])
        else:
            values = _data(objects, "Secret", source["secretRef"]["name"])
        env.update({source.get("prefix", "") + k: v for k, v in values.items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)
            continue
        ref = entry["valueFrom"]
        kind, key = ("Secret", "secretKeyRef") if "secretKeyRef" in ref else ("ConfigMap", "configMapKeyRef")
        env[entry["name"]] = _data(objects, kind, ref[key]["name"])[ref[key]["key"]]
    return env


def command(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The container's argv (command + args, both expanded); the image's entrypoint is not known here,
    so a test asserts that `command` is set."""
    assert container.get("command"), "no command: the image's entrypoint would run"
    return [expand(a, env) for a in [*container["command"], *(container.get("args") or [])]]
