"""HAProxy's own view of each version: per-server counters from the runtime API's `show stat`.

The router sees what the client saw, even when the app's metrics vanish (a crash loop) or
lie (a request the app timed out on records a slow 200 in its histogram while the client
got a 504). `read_backend_stats` takes one snapshot of a backend's servers in one round
trip; `server_delta` turns two snapshots of a server into counts over the interval.

What the server line counts, as verified on HAProxy 2.6.12 (tests/integration/test_haproxy_stats.py):

- A response from the app, whatever its status, counts in the server's `hrsp_<class>` (and
  `req_tot`, which on 2.6 counts responses received from the server).
- Answers HAProxy makes itself are **not** in the server's `hrsp_*`: they are counted in the
  backend's and frontend's `hrsp_5xx` only. On the server line they show as:
  - `timeout server` before the response headers (client gets 504): `eresp` +1, nothing else;
  - the server closes the connection without answering (502): `eresp` +1;
  - connection refused (503 once `retries` are spent): `econ` +1 per request, `wretr` +1 per
    retry, `stot` +1 per attempt (so `stot` is not a request count); with `option redispatch`
    the last retry goes to another server and `wredis` +1 on this one.
  - the server dies in the middle of the body: the status it sent counts in `hrsp_*` (a
    truncated 200 is a 2xx) and both `eresp` and `srv_abrt` +1.
- A killed server: requests already routed to it count as `econ`; once health checks mark it
  DOWN (`chkfail` per failed check, `chkdown` +1 per UP->DOWN transition, `status` DOWN) HAProxy
  stops choosing it, and requests that find no server are counted on the backend line only.
  When HAProxy had an idle keep-alive connection to it, a request sent on that connection gets
  a 502 and counts in `eresp` instead, sometimes more than once per request (seen: 4 for 2).
- A client that gives up before the response counts in `cli_abrt` only with `option
  abortonclose`; without it HAProxy waits for the server and counts the response normally.
- A reload (or restart) starts a new process whose counters start from 0, weights set with
  `set weight` are lost, and every server starts UP until its first checks.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields

from integrations.haproxy.runtime import RuntimeClient, check_name
from integrations.routers.interface import RouterError

# Counters that only ever grow within one HAProxy process; any of them going down means reset.
_MONOTONIC = (
    "stot",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "econ",
    "eresp",
    "cli_abrt",
    "srv_abrt",
    "chkfail",
    "chkdown",
    "wretr",
    "wredis",
)
_DOWN_STATES = ("DOWN", "MAINT")  # "DOWN", "DOWN 1/2" (rising), "MAINT", "MAINT(via)", ...


@dataclass(frozen=True)
class ServerStats:
    """One server's line of `show stat` (empty fields read as 0)."""

    backend: str
    name: str
    status: str  # UP, UP 1/3, DOWN, DOWN 1/2, NOLB, MAINT, MAINT(via), DRAIN, no check
    weight: int  # effective weight, as `show stat` reports it
    stot: int  # sessions (connection attempts, retries included), not requests
    hrsp_1xx: int
    hrsp_2xx: int
    hrsp_3xx: int
    hrsp_4xx: int
    hrsp_5xx: int  # 5xx the server sent; not HAProxy's own 502/503/504
    hrsp_other: int
    econ: int  # requests that failed to connect to the server (after retries)
    eresp: int  # response errors: server timeout, close before answer, abort mid-body
    cli_abrt: int
    srv_abrt: int
    chkfail: int  # failed health checks
    chkdown: int  # UP -> DOWN transitions
    lastchg: int  # seconds since the last status change
    downtime: int  # seconds spent DOWN
    wretr: int  # connection retries
    wredis: int  # redispatches to another server
    req_tot: int | None = None  # responses received from this server (None when not reported)

    @property
    def responses(self) -> int:
        return self.hrsp_1xx + self.hrsp_2xx + self.hrsp_3xx + self.hrsp_4xx + self.hrsp_5xx + self.hrsp_other

    @property
    def down(self) -> bool:
        return self.status.startswith(_DOWN_STATES)


@dataclass(frozen=True)
class ProcessInfo:
    """Which HAProxy process answered: a reload changes both."""

    pid: int
    start_time: int  # Start_time_sec (epoch seconds); 0 when `show info` does not report it


@dataclass(frozen=True)
class BackendStats:
    backend: str
    servers: Mapping[str, ServerStats]  # in configuration order
    taken_at: float  # time.monotonic() when the answer arrived
    process: ProcessInfo | None = None


@dataclass(frozen=True)
class ProxyCounts:
    """What HAProxy saw for one server between two snapshots."""

    requests: int  # answered (any status) + refused (econ) + failed before an answer
    http_2xx: int
    http_3xx: int
    http_4xx: int
    http_5xx: int  # 5xx sent by the server itself
    http_other: int  # 1xx and anything outside 1xx-5xx
    proxy_errors: int  # econ + max(eresp, srv_abrt): failures HAProxy answered 502/503/504 for
    connection_errors: int  # econ
    response_errors: int  # eresp
    server_aborts: int  # srv_abrt (mid-body; also counted in eresp, and in http_* by status)
    client_aborts: int  # cli_abrt
    retries: int  # wretr
    redispatches: int  # wredis
    down_transitions: int  # chkdown
    failed_checks: int  # chkfail
    currently_down: bool
    status: str
    reset: bool  # counters were reset (HAProxy reloaded/restarted): deltas count since the reset

    @property
    def failed(self) -> int:
        """Requests the client saw fail: the server's 5xx plus HAProxy's own error answers."""
        return self.http_5xx + self.proxy_errors


def parse_show_stat(answer: str, backend: str) -> dict[str, ServerStats]:
    """Parse a `show stat` CSV answer by column name; return `backend`'s servers by name."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        text = answer.strip()
        if text.startswith(("No such proxy", "No such backend", "Can't find backend")):
            raise RouterError(f"HAProxy has no backend named {backend!r}", retryable=False)
        if text.startswith(("Permission denied", "Unknown command")):
            raise RouterError(f"HAProxy refused `show stat` ({text.splitlines()[0]})", retryable=False)
        raise RouterError(f"unexpected answer to `show stat` from HAProxy: {answer[:200]!r}")
    servers: dict[str, ServerStats] = {}
    for row in csv.DictReader([lines[0][2:], *lines[1:]]):
        if row.get("pxname") != backend or row.get("svname") in (None, "FRONTEND", "BACKEND"):
            continue
        servers[row["svname"]] = _server(backend, row)
    return servers


def _server(backend: str, row: Mapping[str, str | None]) -> ServerStats:
    def num(column: str) -> int:
        value = (row.get(column) or "").strip()
        return int(value) if value.lstrip("-").isdigit() else 0

    req_tot = (row.get("req_tot") or "").strip()
    counters = {
        f.name: num(f.name) for f in fields(ServerStats) if f.name not in ("backend", "name", "status", "req_tot")
    }
    return ServerStats(
        backend=backend,
        name=str(row["svname"]),
        status=(row.get("status") or "").strip(),
        req_tot=int(req_tot) if req_tot.isdigit() else None,
        **counters,
    )


def read_process(client: RuntimeClient) -> ProcessInfo:
    """`show info`: the pid and start time of the process answering (a reload changes them)."""
    info: dict[str, str] = {}
    for line in client.run("show info").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    if not info.get("Pid", "").isdigit():
        raise RouterError(f"unexpected answer to `show info` from HAProxy: {str(info)[:200]}")
    start = info.get("Start_time_sec", "")
    return ProcessInfo(pid=int(info["Pid"]), start_time=int(start) if start.isdigit() else 0)


def read_backend_stats(client: RuntimeClient, backend: str, *, with_process: bool = False) -> BackendStats:
    """Every server of `backend` in one `show stat <backend> 4 -1` round trip (HAProxy 2.6 takes
    the backend's name as well as its iid). `with_process` adds a `show info` round trip so that
    a reload is detected even when new traffic has already outgrown the old counters."""
    check_name(backend, "backend")
    for _ in range(3):
        process = read_process(client) if with_process else None
        answer = client.run(f"show stat {backend} 4 -1")
        taken_at = time.monotonic()
        servers = parse_show_stat(answer, backend)
        if process is None or read_process(client) == process:
            break  # else HAProxy reloaded between the commands: read again from the new process
    return BackendStats(backend=backend, servers=servers, taken_at=taken_at, process=process)


def server_delta(before: ServerStats | None, after: ServerStats, *, process_changed: bool = False) -> ProxyCounts:
    """Counts for one server between two snapshots. `before=None` (a server added since) counts
    from zero. A counter that went down means HAProxy reset them (reload, restart): the new
    values are then the counts since the reset and `reset` is set; so is it when the caller
    knows the process changed (`process_changed`), which catches a reset whose new counts have
    already passed the old ones."""
    reset = process_changed or (before is not None and any(getattr(after, c) < getattr(before, c) for c in _MONOTONIC))
    base = None if reset else before

    def d(column: str) -> int:
        return getattr(after, column) - (getattr(base, column) if base is not None else 0)

    econ, eresp, srv_abrt = d("econ"), d("eresp"), d("srv_abrt")
    responses = sum(d(c) for c in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"))
    # eresp includes mid-body aborts (already counted in hrsp_* by their status); the rest of
    # eresp are requests that never got an answer from the server (timeouts, early closes).
    unanswered = max(eresp - srv_abrt, 0)
    return ProxyCounts(
        requests=responses + econ + unanswered,
        http_2xx=d("hrsp_2xx"),
        http_3xx=d("hrsp_3xx"),
        http_4xx=d("hrsp_4xx"),
        http_5xx=d("hrsp_5xx"),
        http_other=d("hrsp_1xx") + d("hrsp_other"),
        proxy_errors=econ + max(eresp, srv_abrt),
        connection_errors=econ,
        response_errors=eresp,
        server_aborts=srv_abrt,
        client_aborts=d("cli_abrt"),
        retries=d("wretr"),
        redispatches=d("wredis"),
        down_transitions=d("chkdown"),
        failed_checks=d("chkfail"),
        currently_down=after.down,
        status=after.status,
        reset=reset,
    )


def backend_delta(before: BackendStats, after: BackendStats) -> dict[str, ProxyCounts]:
    """`server_delta` for every server in `after` (a server new since `before` counts from 0)."""
    changed = before.process is not None and after.process is not None and before.process != after.process
    return {
        name: server_delta(before.servers.get(name), now, process_changed=changed)
        for name, now in after.servers.items()
    }
