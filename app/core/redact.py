"""Keep secrets out of what Sluice records and shows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_TOKENISH = re.compile(r"(?i)(token|secret|password|authorization|api[_-]?key)([\"'=:\s]+)([^\s\"'&,]+)")
MIN_SECRET = 4
REDACTED = "[redacted]"


def _variants(secrets: Iterable[str]) -> list[str]:
    """The secrets as they may appear in an answer (JSON escapes `/` as `\\/`), longest first so that
    a secret containing another is blanked whole."""
    found = set()
    for s in secrets:
        if s and len(s) >= MIN_SECRET:
            found.add(s)
            found.add(s.replace("/", "\\/"))
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Blank out known secret values and anything that looks like `token=...`."""
    for s in _variants(secrets):
        text = text.replace(s, REDACTED)
    return _TOKENISH.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_clip(text: str, secrets: Iterable[str], limit: int) -> str:
    """Redact, then cut to `limit` characters: never the other way round, which would leave the first
    characters of a secret that crosses the cut. A text that was already cut elsewhere and ends in
    the beginning of a secret loses that beginning too."""
    variants = _variants(secrets)
    for s in variants:
        for k in range(min(len(s) - 1, len(text)), MIN_SECRET - 1, -1):
            if text.endswith(s[:k]):
                text = text[:-k] + REDACTED
                break
    return redact(text, variants)[:limit]


def safe_url(url: str) -> str:
    """A URL without credentials, query or fragment (Slack-style URLs carry secrets in the path too)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_secrets(url: str) -> list[str]:
    """What of a URL is secret: its credentials, its query and each query value."""
    parts = urlsplit(url)
    found = [parts.password or "", parts.query, parts.fragment]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [s for s in found if s and len(s) >= MIN_SECRET]
