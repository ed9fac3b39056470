"""Rate limits on login and intake (Flask-Limiter, counted in Redis: app/store/rate_limits.py).

Per client address (the proxy's client, when a trusted proxy is configured: app/web/security.py):
- `POST /login`: SLUICE_LOGIN_RATE failed logins (default 10 per minute); a right token is not counted.
- the receivers (`/hooks/deploy`, `/hooks/circleci`, `/hooks/argocd`, `/hooks/argo-rollouts`):
  SLUICE_INTAKE_RATE requests, all receivers together (default 300 per minute: CircleCI sends from a
  few addresses).
Past a limit: 429 JSON with Retry-After. If Redis cannot be asked, the request goes on (a Redis outage
is answered 503 by the handlers themselves) rather than failing every login and webhook.

The login is limited by Flask-Limiter (a moving window; only failed logins are counted, after the
view). The receivers are the hot path of a retrying CI, so their budget is Sluice's own
sliding-window counter (app/store/rate_limits.py), counted in the script of the request's first
Redis effect (the known-bad/duplicate lookup, a once-only claim, a signed id's replay claim: one
round trip for both), or on its own when the request ends before any (a 400, a 401, an ignored
event). A refused request is answered 429 and leaves nothing else behind either way.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, g, has_request_context, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from app.config_file.loader import ConfigError
from app.store import StoreUnavailable
from app.store.rate_limits import SCHEME, Count, RateLimited, Window
from app.web.errors import error_response

log = logging.getLogger("sluice.web")
RATES = {"SLUICE_LOGIN_RATE": "10 per minute", "SLUICE_INTAKE_RATE": "300 per minute"}
LOGIN = "dashboard.login"
INTAKE = ("deploy.deploy", "circleci.circleci", "argo.argocd", "argo.argo_rollouts")


def rate(name: str) -> str:
    """The rate in env `name`, checked: a ValueError naming the setting and an example otherwise."""
    value = os.environ.get(name, "").strip() or RATES[name]
    try:
        parse_many(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a rate; write it like {RATES[name]!r} (or '5/second', '100 per hour')"
        ) from None
    return value


def _store() -> Any:
    from app.context import get_context

    return get_context().store


def install(app: Flask) -> Limiter:
    login_rate, intake_rate = rate("SLUICE_LOGIN_RATE"), rate("SLUICE_INTAKE_RATE")
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=f"{SCHEME}://",
        storage_options={"store": _store},  # type: ignore[dict-item]
        strategy="moving-window",
        swallow_errors=True,  # Redis down: serve (and log) rather than refuse everyone
        key_prefix="sluice",
    )
    _login_only_hooks(app, limiter)
    login = limiter.limit(login_rate, methods=["POST"], deduct_when=lambda r: r.status_code == 401)
    app.view_functions[LOGIN] = login(app.view_functions[LOGIN])  # type: ignore[assignment]
    budget = windows(intake_rate)
    for endpoint in INTAKE:  # one budget for all the receivers
        app.view_functions[endpoint] = _intake_limited(app.view_functions[endpoint], budget)

    @app.errorhandler(RateLimited)
    def _budget_spent(exc: RateLimited) -> Any:
        return too_many(exc.refused.window.text, exc.refused.retry_after)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Any:
        window = limiter.current_limit
        wait = 60
        if window is not None:  # until the oldest counted request leaves the window (at most the window)
            wait = min(math.ceil(window.reset_at - time.time()), window.limit.get_expiry())
        wait = max(1, wait)
        return too_many(exc.description or "", wait)

    return limiter


def too_many(limit: str, wait: int) -> Response:
    message = f"too many requests from this address ({limit}); try again in {wait} s"
    return error_response(429, message, headers={"Retry-After": str(wait)})


def windows(value: str) -> list[Window]:
    """A checked rate (`rate()`) as the windows the receivers' counter keeps."""
    return [Window(item.amount, item.get_expiry(), str(item)) for item in parse_many(value)]


def pending() -> Count | None:
    """The receivers' count of this request, for the script of its first Redis effect to make
    (None outside a receiver or a request; once counted, scripts are sent without it)."""
    return cast(Count | None, g.get("sluice_intake_count")) if has_request_context() else None


def count_first() -> None:
    """Count this request now, on its own: before a first Redis effect that cannot carry the count
    (a fleet's start). RateLimited when the budget is spent; a no-op when counted already."""
    count = pending()
    if count is not None:
        _count(count)


def _count(count: Count) -> None:
    try:
        _store().count_request(count)
    except (StoreUnavailable, ConfigError) as exc:
        # Redis, or the configuration the store comes with, cannot be had: serve, as Flask-Limiter's
        # swallow_errors does. The view still refuses what it can without them (413, 400, 401) and
        # answers 503 for the rest.
        log.warning("the receivers' rate limit could not be counted (%s); serving", exc)
        count.done = True


def _intake_limited(view: Callable[..., Any], budget: list[Window]) -> Callable[..., Any]:
    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        count = g.sluice_intake_count = Count("intake", get_remote_address(), budget, time.time())
        try:
            resp = view(*args, **kwargs)
        except (RateLimited, StoreUnavailable):  # refused by its first Redis effect's script; Redis is down
            raise
        except Exception:
            if not count.done:  # it ended (400, 401, ...) before any Redis effect: counted now
                _count(count)  # RateLimited (answered 429 in place of the error) when the budget is spent
            raise
        if not count.done:
            _count(count)
        return resp

    return limited


def _is_limiter_hook(hook: Any, limiter: Limiter, name: str) -> bool:
    """Flask-Limiter's hook `name` (a bound method, or a partial of its class's function with the limiter)."""
    if isinstance(hook, functools.partial):
        return bool(hook.args) and hook.args[0] is limiter and hook.func.__name__ == name
    return getattr(hook, "__self__", None) is limiter and hook.__name__ == name


def _login_only_hooks(app: Flask, limiter: Limiter) -> None:
    """Flask-Limiter hooks every request: before the view it checks application, default and blueprint
    limits; after it, it deducts conditional limits and adds headers; at teardown it resets its
    bookkeeping. Sluice's only Flask-Limiter limit decorates the login view, which checks it itself, so
    the check before is dropped, and the two others run for the login only (they cost ~2% of a duplicate
    webhook's CPU in a gevent worker; the check before, about a tenth). Should a later Flask-Limiter
    register its hooks differently, nothing is dropped or skipped."""
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [h for h in hooks if not _is_limiter_hook(h, limiter, "_check_request_limit")]

    def for_login(hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def login_only(arg: Any) -> Any:
            return hook(arg) if request.endpoint == LOGIN else arg

        return login_only

    for funcs, name in (
        (app.after_request_funcs, "__inject_headers"),
        (app.teardown_request_funcs, "__release_context"),
    ):
        table = cast(dict[Any, list[Any]], funcs)  # after and teardown hooks: one argument, the same handling
        table[None] = [for_login(h) if _is_limiter_hook(h, limiter, name) else h for h in table.get(None, [])]
