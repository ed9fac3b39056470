"""Loading a configuration file, with errors that name the file, the path inside it and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.config_file.schema import SluiceConfig


class ConfigError(Exception):
    """A configuration file that cannot be used; `problems` lists (location, message) pairs."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path}: {where}: {msg}" for where, msg in self.problems]
        return "\n".join(lines)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _ in node.value:
        lines[str(loader.construct_object(key_node))] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2 booleans only: in YAML 1.1 `on:`, `yes` and `no` are booleans, which would turn a
# hook's `on: [failed]` into `True: [failed]` (and the country code NO into False).
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_lines(v) for k, v in data.items() if k not in ("__lines__", "__line__")}
    if isinstance(data, list):
        return [_strip_lines(v) for v in data]
    return data


def _line_of(data: Any, loc: tuple) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(str(part), node.get("__line__", line))
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return line


_HINTS = {
    "extra_forbidden": "remove this key (or check its spelling): it is not a Sluice setting",
    "missing": "add this required key",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' (Kubernetes label syntax)",
}


def _without_tags(loc: tuple, data: Any) -> tuple:
    """The error's location without the tags of tagged unions: pydantic reports an unknown key of a
    gateway-api router as `router.gateway-api.bogus`; the file says `router: {type: gateway-api}`.
    A location part is a tag where the data there is a mapping whose `type` is that part (and
    that has no key of that name), so this holds for every union whose discriminator is `type`."""
    out: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def format_validation_error(error: ValidationError, data: Any) -> list[tuple[str, str]]:
    problems = []
    for err in error.errors():
        loc = _without_tags(err["loc"], data)
        path = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(data, loc)
        where = f"line {line}: {path}" if line else path
        msg = err["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(err["type"])
        if err["type"] == "string_pattern_mismatch" and "A-Z_" in str(err.get("ctx", {}).get("pattern", "")):
            hint = "use the NAME of an environment variable, in capitals (e.g. SLUICE_WEBHOOK_SECRET)"
        problems.append((where, f"{msg}" + (f" — {hint}" if hint else "")))
    return problems


def parse_config(text: str, path: str = "<config>") -> SluiceConfig:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(path, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, [("(top level)", "expected a mapping with `applications` and `policies`")])
    try:
        return SluiceConfig.model_validate(_strip_lines(raw))
    except ValidationError as exc:
        raise ConfigError(path, format_validation_error(exc, raw)) from None


def load_config(path: str | Path) -> SluiceConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [("(file)", f"cannot read it: {exc.strerror}; set SLUICE_CONFIG")]) from None
    return parse_config(text, str(p))


def json_schema() -> str:
    schema = SluiceConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Sluice configuration"
    return json.dumps(schema, indent=2)
