"""Who puts a steering action's weights on the router: the request itself, or the workers.

The web process faces the internet; in deploy/ it runs with SLUICE_WEB_STEERS=false and its
Kubernetes account may only read the router (deploy/rbac.yaml). A promote, abort or rollback there
records its decision (as always, with `weights_applied` false) and hands the act to the workers:
the release's tick is made due now and put on the urgent queue every worker takes first
(app/store/queues.py). The tick finishes a recorded decision before anything else
(workers/tick.py `load`), and a rollback's tick then records its end (`decide_rollback`). The
request waits briefly for that and answers the release as it is.

Nothing is half-done: the decision is committed before the hand-over, and its tick stays in the
`due` schedule, so if no worker is up, the first one to start applies it.

Unset (the local demo, the in-process tests) the request steers itself, as one process does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from app.context import Context
from app.core.models import Release

STEERS_ENV = "SLUICE_WEB_STEERS"
# How long a request waits for a worker to confirm the act before answering 202: long enough for an
# idle worker (it takes the urgent queue first), short enough for a client's timeout and Slack's 3 s.
WAIT_SECONDS = 3.0
POLL_SECONDS = 0.05
_TRUE = ("1", "true", "yes", "on")


def steers_in_request() -> bool:
    """Whether this process sets the router's weights itself (SLUICE_WEB_STEERS, default true).
    Any value but a plain "true" means no: a process without router writes is the safe reading of
    a typo (the workers apply the act either way)."""
    raw = os.environ.get(STEERS_ENV, "").strip().lower()
    return not raw or raw in _TRUE


def hand_over(ctx: Context, release: Release) -> None:
    """Have a worker run the release's tick now (its recorded decision is applied first)."""
    ctx.store.hand_over_tick(release.id, release.seq, time.time())


def wait_for(ctx: Context, release: Release, done: Callable[[Release], bool], seconds: float | None = None) -> Release:
    """The release once `done` holds, or as it is after `seconds` (WAIT_SECONDS)."""
    deadline = time.monotonic() + (WAIT_SECONDS if seconds is None else seconds)
    current = release
    while not done(current) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        current = ctx.store.get(release.id) or current
    return current


def applied(release: Release) -> bool:
    """A steering action's end: the router shows the decision's weights."""
    return release.weights_applied
