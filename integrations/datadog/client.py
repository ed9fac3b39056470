"""Datadog's metrics query API (v1) as calls that return series or a reason, never an exception.

`GET /api/v1/query?from=<s>&to=<s>&query=<q>` with `DD-API-KEY` and `DD-APPLICATION-KEY`
headers answers `{"status": "ok", "series": [{"metric", "scope", "tag_set", "pointlist":
[[ms, value|null], ...], "query_index", ...}]}`, or `{"status": "error", "error": ...}`; a 4xx
answers `{"errors": [...]}`. Each query has a time budget (`timeout`) covering its retries:
5xx and connection errors are retried with exponential backoff; a 429 waits for
`X-RateLimit-Reset` (seconds until the limit resets) when that fits within `max_rate_limit_wait`
and the budget, and otherwise is reported as "rate limited". The keys never appear in a reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from integrations.datadog.config import DatadogConfig

USER_AGENT = "Sluice/1"
_MIN_ATTEMPT_TIMEOUT = 0.05
_DEFAULT_RATE_LIMIT_WAIT = 1.0  # a 429 without a usable X-RateLimit-Reset


@dataclass
class Series:
    """One answered series: its query index, tags and the values of its non-null points."""

    query_index: int
    tags: dict[str, str]
    values: list[float] = field(default_factory=list)


class MissingKey(Exception):
    pass


def _key(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingKey(f"environment variable {name} ({what}) is not set")
    return value


def _tags(item: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in item.get("tag_set") or []:
        key, _, value = str(tag).partition(":")
        tags[key] = value
    return tags


def _reason(resp: requests.Response) -> str:
    """Datadog's own message: `{"errors": [...]}` (4xx), `{"error": ...}`, or the status alone."""
    try:
        data = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}"
    if isinstance(data, dict):
        errors = data.get("errors") or data.get("error")
        if errors:
            text = "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
            return f"HTTP {resp.status_code}: {text[:300]}"
    return f"HTTP {resp.status_code}"


def _number(header: str | None) -> float | None:
    try:
        value = float(header) if header is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


class DatadogQuerier:
    def __init__(self, config: DatadogConfig) -> None:
        self.config = config
        self.url = config.api_url + "/api/v1/query"
        self.session = requests.Session()
        self.calls = 0  # HTTP requests made (for tests and the primer-less cost of a tick)

    def close(self) -> None:
        self.session.close()

    def query(self, query: str, start: float, end: float) -> tuple[list[Series], str | None]:
        """Every series the query answers over [start, end] (seconds), or ([], reason)."""
        try:
            headers = {
                "DD-API-KEY": _key(self.config.api_key_env, "the Datadog API key"),
                "DD-APPLICATION-KEY": _key(self.config.app_key_env, "the Datadog application key"),
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        except MissingKey as exc:
            return [], f"Datadog: {exc}"
        secrets = [headers["DD-API-KEY"], headers["DD-APPLICATION-KEY"]]
        series, error = self._call(query, int(start), int(end), headers)
        if error is not None:
            for secret in secrets:  # in case an answer ever echoes a key
                error = error.replace(secret, "[redacted]")
        return series, error

    def _call(self, query: str, start: int, end: int, headers: dict[str, str]) -> tuple[list[Series], str | None]:
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout
        params = {"from": str(start), "to": str(end), "query": query}
        failures = 0
        while True:
            remaining = deadline - time.monotonic()
            self.calls += 1
            try:
                resp = self.session.get(
                    self.url,
                    params=params,
                    headers=headers,
                    timeout=max(_MIN_ATTEMPT_TIMEOUT, remaining),
                    allow_redirects=False,
                )
            except requests.Timeout:
                return [], f"Datadog error: no answer within {cfg.timeout:g}s"
            except requests.RequestException as exc:
                reason = f"Datadog error: cannot reach {cfg.api_url} ({type(exc).__name__})"
                wait = min(1.0, 0.1 * 2**failures)
            else:
                if resp.status_code == 200:
                    return self._parse(resp)
                if resp.status_code == 429:
                    reset = _number(resp.headers.get("X-RateLimit-Reset"))
                    wait = max(0.1, reset) if reset is not None else _DEFAULT_RATE_LIMIT_WAIT
                    name = resp.headers.get("X-RateLimit-Name", "")
                    reason = f"Datadog rate limited{f' ({name[:60]})' if name else ''}: the limit resets in {wait:g}s"
                    if wait > cfg.max_rate_limit_wait or time.monotonic() + wait >= deadline:
                        return [], reason
                    time.sleep(wait)
                    continue  # a rate-limit wait is not a failure: it does not use up a retry
                reason = f"Datadog error: {_reason(resp)}"
                if resp.status_code < 500:
                    return [], reason
                wait = min(1.0, 0.1 * 2**failures)
            failures += 1
            if failures > cfg.retries or time.monotonic() + wait + _MIN_ATTEMPT_TIMEOUT >= deadline:
                return [], reason
            time.sleep(wait)

    @staticmethod
    def _parse(resp: requests.Response) -> tuple[list[Series], str | None]:
        try:
            data = resp.json()
            if data.get("status") not in (None, "ok") or data.get("error"):
                return [], f"Datadog error: {str(data.get('error') or data.get('status'))[:300]}"
            series = []
            for item in data.get("series") or []:
                values = [float(p[1]) for p in item.get("pointlist") or [] if p[1] is not None]
                series.append(Series(int(item.get("query_index") or 0), _tags(item), values))
            return series, None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            return [], f"Datadog error: unexpected answer ({type(exc).__name__})"
