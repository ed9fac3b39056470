"""Keep secrets out of what Sluice records and shows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

_TOKENISH = re.compile(r"(?i)(token|secret|password|authorization|api[_-]?key)([\"'=:\s]+)([^\s\"'&,]+)")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Blank out known secret values and anything that looks like `token=...`."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "[redacted]")
    return _TOKENISH.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)


def safe_url(url: str) -> str:
    """A URL without credentials, query or fragment (Slack-style URLs carry secrets in the path too)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
