"""What the sentinels say about Sluice's Redis master, for `sluice doctor`.

Each sentinel is asked on its own (`SENTINEL MASTER`, `SENTINEL REPLICAS`), so the answer shows
disagreement: a sentinel that cannot be reached, or that names another master, is counted apart.
Nothing is changed, and no password is part of the view.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.store.connection import SENTINEL_TIMEOUT, SentinelTarget, parse_sentinel_url


@dataclass(frozen=True)
class SentinelView:
    master_name: str
    sentinels: int  # configured
    reached: int  # answered
    master: str | None  # the address most reachable sentinels name (host:port)
    agreeing: int  # sentinels that name `master`, reachable and not reporting it down
    quorum: int | None
    replicas: list[str] = field(default_factory=list)  # healthy replicas (host:port), as the sentinels see them
    problems: list[str] = field(default_factory=list)  # per sentinel: unreachable, other master, master down
    # Each healthy replica's persistence ("AOF", "RDB", "none" or "unknown: why"): a replica is the next
    # master, and one that persists nothing loses every release if it restarts after a failover.
    replica_persistence: dict[str, str] = field(default_factory=dict)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sentinel_view(url: str) -> SentinelView:
    target = parse_sentinel_url(url)
    named: Counter[str] = Counter()
    quorum: int | None = None
    replicas: dict[str, None] = {}
    problems: list[str] = []
    reached = 0
    for host, port in target.sentinels:
        client = redis.Redis(
            host,
            port,
            password=target.sentinel_password,
            socket_timeout=SENTINEL_TIMEOUT,
            socket_connect_timeout=SENTINEL_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # one question per sentinel: an unreachable one is the answer
        )
        where = f"sentinel {host}:{port}"
        try:
            state = cast(dict[str, Any], client.sentinel_master(target.master))
            reached += 1
            down = bool(state.get("is_sdown") or state.get("is_odown"))
            address = f"{_text(state['ip'])}:{state['port']}"
            if down:
                problems.append(f"{where} sees master {address} as down")
            else:
                named[address] += 1
            quorum = int(state.get("quorum", 0)) or quorum
            for replica in cast(list[dict[str, Any]], client.sentinel_slaves(target.master)):
                if not (replica.get("is_sdown") or replica.get("is_odown") or replica.get("is_disconnected")):
                    replicas[f"{_text(replica['ip'])}:{replica['port']}"] = None
        except redis.ResponseError as exc:  # it does not monitor this master name
            reached += 1
            problems.append(f"{where}: {str(exc)[:120]}")
        except redis.AuthenticationError:
            problems.append(f"{where} refused the password (set REDIS_SENTINEL_PASSWORD to the sentinels' own)")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            problems.append(f"{where} unreachable ({type(exc).__name__})")
        finally:
            client.close()
    master, agreeing = named.most_common(1)[0] if named else (None, 0)
    persistence = {address: _persistence(target, address) for address in replicas}
    for address, count in named.items():
        if address != master:
            problems.append(f"{count} sentinel(s) name another master, {address}")
    return SentinelView(
        master_name=target.master,
        sentinels=len(target.sentinels),
        reached=reached,
        master=master,
        agreeing=agreeing,
        quorum=quorum,
        replicas=list(replicas),
        problems=problems,
        replica_persistence=persistence,
    )


def _persistence(target: SentinelTarget, address: str) -> str:
    host, _, port = address.rpartition(":")
    client = redis.Redis(
        host,
        int(port),
        username=target.username,
        password=target.password or os.environ.get("REDIS_PASSWORD") or None,
        socket_timeout=SENTINEL_TIMEOUT,
        socket_connect_timeout=SENTINEL_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        aof = _text(client.config_get("appendonly").get("appendonly", "no")) == "yes"
        rdb = bool(_text(client.config_get("save").get("save", "")).strip())
    except redis.RedisError as exc:
        return f"unknown: {type(exc).__name__}"
    finally:
        client.close()
    return "AOF" if aof else "RDB" if rdb else "none"
