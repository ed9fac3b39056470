"""Instant queries against Prometheus that return a value or a reason, never an exception.

A release tick must always reach a decision, so every failure (unreachable server, bad
query, odd result) becomes a one-line reason the core can record as "no data". Each call
has a total time budget of `timeout` seconds, retries included: a down Prometheus slows a
tick by at most that much. Header values (tokens) and URL credentials never appear in a
reason.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from urllib3.util.retry import Retry

from integrations.prometheus.form import form_body

_STATUS_RE = re.compile(r"HTTP Status Code (\d{3}) \((.*)\)\s*$", re.S)
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
_MIN_ATTEMPT_TIMEOUT = 0.05


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server could not be reached, or answered 5xx."""
    if isinstance(exc, requests.ConnectionError):  # includes ConnectTimeout, not ReadTimeout
        return True
    if isinstance(exc, PrometheusApiClientException):
        match = _STATUS_RE.match(str(exc))
        return bool(match and match.group(1).startswith("5"))
    return False


def _redact_url(url: str) -> str:
    """The URL without user:password@ (safe to show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _api_error(exc: PrometheusApiClientException) -> str:
    """`HTTP 400: bad_data: 1:5: parse error: ...` from the library's exception text."""
    match = _STATUS_RE.match(str(exc))
    if not match:
        return str(exc)[:300]
    status, body = match.groups()
    try:
        raw = ast.literal_eval(body)
        payload = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return f"HTTP {status}: {payload.get('errorType', 'error')}: {payload['error']}"[:500]
    except (ValueError, SyntaxError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return f"HTTP {status}"


def _parse_result(result: Any) -> tuple[float | None, str | None]:
    """One number from an instant-query result (vector or scalar)."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], int | float):
        raw = result[1]  # a scalar (or string) result: [time, "value"]
    elif isinstance(result, list):
        if not result:
            return None, "no data: the query returned no series"
        if len(result) > 1:
            return None, f"query returned {len(result)} series; aggregate it with sum()"
        sample = result[0]
        if "value" not in sample:
            return None, "the query returned a range vector; wrap it in a function such as rate()"
        raw = sample["value"][1]
    else:
        return None, f"Prometheus error: unexpected result {str(result)[:100]!r}"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"the query returned {str(raw)[:100]!r}, not a number"
    if math.isnan(value) or math.isinf(value):
        return None, (f"the query returned {raw} (NaN/Inf: usually 0/0, i.e. no traffic in the window)")
    return value, None


# How far from the priming time a query may be and still be answered from primed values.
PRIMED_FOR_SECONDS = 5.0
# Within a batch's budget: after this many queries in a row found Prometheus unreachable or too
# slow, the batch's other queries are not sent (a frozen Prometheus costs two timeouts, not 16 x 4).
DOWN_AFTER = 2


class PrometheusQuerier:
    """Instant queries with a per-call time budget and a short retry on transient failures."""

    def __init__(self, url: str, timeout: float, headers: dict[str, str] | None = None, retries: int = 2) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._shown_url = _redact_url(self.url)
        # The library's own urllib3 retry (3 tries, 1 s backoff) would blow the time budget;
        # retries happen here instead, where they are bounded. read=False keeps a read timeout
        # a requests.ReadTimeout (with read=0 it would surface as a ConnectionError).
        no_retry = Retry(total=None, connect=0, read=False, status=0, other=0, redirect=3)
        # trust_env=False: requests would otherwise scan the whole environment for proxy settings
        # on every query (a quarter of a tick's CPU); Prometheus is reached directly.
        session = requests.Session()
        session.trust_env = False
        self._session = session  # for form-encoded queries (`query_vector(..., form=True)`)
        self._prom = PrometheusConnect(url=self.url, headers=headers, retry=no_retry, timeout=timeout, session=session)
        self._primed: dict[str, tuple[float | None, str | None]] = {}
        self._primed_at = 0.0
        self._budget: tuple[float, float] | None = None  # (seconds, monotonic deadline) of a batch
        self._down: list[str] = []  # this batch's consecutive "unreachable or too slow" reasons

    def close(self) -> None:
        self._prom.close()

    def query_value(self, promql: str, at: float) -> tuple[float | None, str | None]:
        """(value, None), or (None, reason) for no data, NaN/Inf, several series or any error."""
        primed = self._primed.get(promql)
        if primed is not None and abs(at - self._primed_at) <= PRIMED_FOR_SECONDS:
            return primed
        result, error = self._query(promql, at)
        if error is not None:
            return None, error
        try:
            return _parse_result(result)
        except (KeyError, IndexError, TypeError) as exc:
            return None, f"Prometheus error: unexpected result shape ({type(exc).__name__})"

    def query_vector(
        self, promql: str, at: float, form: bool = False
    ) -> tuple[list[tuple[dict[str, str], float | None]], str | None]:
        """Every series of an instant vector as (labels, value); a NaN/Inf value is None. `form`: sent
        as a POST form rather than in the URL, for a long query (a batch's packed counts, tens of KB)
        that a URL would not hold and that requests would re-quote character by character."""
        result, error = self._query(promql, at, form=True) if form else self._query(promql, at)
        if error is not None:
            return [], error
        if not isinstance(result, list):
            return [], "Prometheus error: expected an instant vector"
        series = []
        try:
            for sample in result:
                value, _ = _parse_result([sample])
                series.append((dict(sample.get("metric", {})), value))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            return [], f"Prometheus error: unexpected result shape ({type(exc).__name__})"
        return series, None

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> tuple[list[tuple[dict[str, str], list[tuple[float, float]]]], str | None]:
        """A range query (history: backtests): every series as (labels, [(time, value)]), NaN/Inf dropped."""
        from datetime import UTC, datetime

        try:
            result = self._prom.custom_query_range(
                promql,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{max(1, math.ceil(step))}s",
                timeout=max(self.timeout, 30.0),
            )
        except (PrometheusApiClientException, requests.RequestException) as exc:
            return [], self._describe(exc)
        except (ValueError, KeyError, TypeError):
            return [], f"Prometheus error: unexpected response from {self._shown_url}"
        out = []
        for series in result or []:
            points = []
            for ts, raw in series.get("values", []):
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    points.append((float(ts), value))
            out.append((dict(series.get("metric", {})), points))
        return out, None

    def prime(self, answers: dict[str, tuple[float | None, str | None]], at: float) -> None:
        """Answer these exact queries from memory for queries at about `at` (see prometheus/batch.py).
        `prime({}, 0)` forgets them."""
        self._primed, self._primed_at = answers, at

    def start_budget(self, seconds: float) -> None:
        """Bound the queries that follow (a batch's, workers/tick.py): together they take at most
        `seconds`, and after DOWN_AFTER queries in a row found Prometheus unreachable or too slow,
        the rest fail at once with that reason. `end_budget()` lifts the bound."""
        self._budget = (seconds, time.monotonic() + seconds)
        self._down = []

    def end_budget(self) -> None:
        self._budget, self._down = None, []

    def _query(self, promql: str, at: float, form: bool = False) -> tuple[Any, str | None]:
        deadline = time.monotonic() + self.timeout
        if self._budget is not None:
            seconds, until = self._budget
            if len(self._down) >= DOWN_AFTER:
                return None, f"{self._down[-1]} (not asked again in this batch)"
            if time.monotonic() >= until:
                return None, f"Prometheus error: this batch's query budget ({seconds:g}s) is spent"
            deadline = min(deadline, until)
        result, error = self._attempts(promql, at, deadline, form)
        if self._budget is not None:
            self._down = [*self._down, error] if error is not None and self._unreachable(error) else []
        return result, error

    def _unreachable(self, reason: str) -> bool:
        return reason.startswith(f"Prometheus error: cannot reach {self._shown_url}") or reason.startswith(
            f"Prometheus error: {self._shown_url} did not answer within"
        )

    def _attempts(self, promql: str, at: float, deadline: float, form: bool = False) -> tuple[Any, str | None]:
        def attempt() -> Any:
            remaining = max(_MIN_ATTEMPT_TIMEOUT, deadline - time.monotonic())
            if form:
                return self._form_query(promql, at, remaining)
            return self._prom.custom_query(promql, params={"time": f"{at:.3f}"}, timeout=remaining)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: self._stop_if_out_of_time(state, deadline),
            reraise=True,
        )
        try:
            return retrying(attempt), None
        except _OutOfTime as exc:
            return None, self._describe(exc.last)
        except (PrometheusApiClientException, requests.RequestException, RetryError) as exc:
            return None, self._describe(exc)
        except (ValueError, KeyError, TypeError) as exc:  # a 200 that is not Prometheus JSON
            why = type(exc).__name__
            return None, f"Prometheus error: unexpected response from {self._shown_url} ({why})"

    def _form_query(self, promql: str, at: float, timeout: float) -> Any:
        """What `custom_query` does, as the POST form Prometheus's query API also takes; failures
        raise the library's exception, so that retries and reasons are the same."""
        response = self._session.post(
            f"{self.url}/api/v1/query",
            data=form_body({"query": promql, "time": f"{at:.3f}"}),  # encoded at C speed (form.py)
            headers={**(self._prom.headers or {}), "Content-Type": "application/x-www-form-urlencoded"},
            auth=self._prom.auth,
            timeout=timeout,
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(f"HTTP Status Code {response.status_code} ({response.content!r})")
        return response.json()["data"]["result"]

    @staticmethod
    def _stop_if_out_of_time(state: Any, deadline: float) -> None:
        """Give up instead of sleeping when the next attempt would start after the deadline."""
        sleep = state.next_action.sleep if state.next_action else 0.0
        if time.monotonic() + sleep + _MIN_ATTEMPT_TIMEOUT >= deadline:
            exc = state.outcome.exception() if state.outcome else None
            raise _OutOfTime(exc)

    def _describe(self, exc: BaseException | None) -> str:
        """A reason that names the server but never its credentials or our headers."""
        if isinstance(exc, PrometheusApiClientException):
            return f"Prometheus error: {_api_error(exc)}"
        if isinstance(exc, requests.Timeout):
            return f"Prometheus error: {self._shown_url} did not answer within {self.timeout:g}s"
        if isinstance(exc, requests.ConnectionError):
            errno = _ERRNO_RE.search(str(exc))
            why = errno.group(0).strip() if errno else type(exc).__name__
            return f"Prometheus error: cannot reach {self._shown_url}: {why}"
        return f"Prometheus error: {type(exc).__name__} talking to {self._shown_url}"


class _OutOfTime(Exception):
    """Raised from tenacity's before_sleep hook to stop retrying when the time budget is spent."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__("out of time")
        self.last = last
