"""PromQL templates: `{service}`-style variables replaced by escaped values.

PromQL itself is full of braces (`metric{label="x"}`), so only the exact placeholders
`{service}`, `{version}`, `{stable_version}`, `{namespace}` and `{window}` are replaced;
every other brace is left alone. Values are validated label values and are additionally
escaped as the inside of a PromQL double-quoted string, so nothing a caller sends can
change the shape of a query.
"""

from __future__ import annotations

import json
import re

from app.core.names import check_label_value

TEMPLATE_VARIABLES = ("service", "version", "stable_version", "namespace", "window")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")
_WINDOW_RE = re.compile(r"^\d+(ms|s|m|h)$")


def template_placeholders(template: str) -> list[str]:
    """The `{name}` placeholders a template uses (PromQL matchers like `{a="b"}` are not placeholders)."""
    return _PLACEHOLDER_RE.findall(template)


def escape_string(value: str) -> str:
    """Escape a value for use inside a PromQL double-quoted string (PromQL strings follow Go/JSON rules)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def window(seconds: float) -> str:
    """A PromQL range duration for `seconds` (at least 1s), e.g. 30s, 2500ms."""
    ms = max(1000, int(round(seconds * 1000)))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render(template: str, variables: dict[str, str]) -> str:
    """Fill a template. Label-like variables must be valid label values; `window` a PromQL duration."""
    safe: dict[str, str] = {}
    for name, value in variables.items():
        if name not in TEMPLATE_VARIABLES:
            raise ValueError(f"unknown template variable {name!r}")
        if name == "window":
            if not _WINDOW_RE.match(value):
                raise ValueError(f"window {value!r} is not a PromQL duration")
            safe[name] = value
        else:
            safe[name] = escape_string(check_label_value(value, name))

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TEMPLATE_VARIABLES:
            return match.group(0)
        if name not in safe:
            raise ValueError(f"template uses {{{name}}} but no value was given for it")
        return safe[name]

    return _PLACEHOLDER_RE.sub(substitute, template)
