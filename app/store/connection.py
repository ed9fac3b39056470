"""The one place a Redis client is made: a plain Redis URL, or Redis Sentinel.

Every process (web, worker and its RQ queues, watcher, CLI) gets its client from `connect`, through
`Context.store`. Two spellings choose Sentinel:

    REDIS_URL=redis+sentinel://[:password@]host1:26379,host2:26379/mymaster[/db]
    REDIS_SENTINELS=host1:26379,host2:26379  REDIS_SENTINEL_MASTER=mymaster  [REDIS_PASSWORD, REDIS_DB]

The password (URL or REDIS_PASSWORD) is the one of the Redis servers (master and replicas); sentinels
that require their own take REDIS_SENTINEL_PASSWORD. A Sentinel client asks the sentinels for the
current master before each new connection, so after a failover the next attempt reaches the promoted
replica; the retry policy below spans the few seconds sentinels need to agree (longer outages raise
`ConnectionError`, which the web answers with 503 + Retry-After and the worker with a backoff).

`shown` is how a URL may appear in logs, errors and `sluice doctor`: never with its password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379

# Data connections: a command that takes 5 s is a hung server, not a slow one.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0
# Sentinels answer one small command; a sentinel that does not answer in a second is skipped.
SENTINEL_TIMEOUT = 1.0
# Through a failover: 6 retries, 0.1 s doubling to 1 s between them (about 3.5 s, plus refused
# connects, which are immediate). Long enough for a web request to ride out a quick reconnect,
# short enough that it answers 503 rather than hold a gunicorn thread for the whole failover.
FAILOVER_RETRIES = 6
BACKOFF_BASE = 0.1
BACKOFF_CAP = 1.0

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")
_MASTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXAMPLE = "redis+sentinel://[:password@]host1:26379,host2:26379/mymaster/0"


class RedisUrlError(ValueError):
    """REDIS_URL / REDIS_SENTINELS cannot be understood; the message says what to write instead."""


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False

    def shown(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        scheme = "rediss+sentinel" if self.ssl else "redis+sentinel"
        auth = f"{self.username or ''}:***@" if self.password else ""
        return f"{scheme}://{auth}{hosts}/{self.master}/{self.db}"


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not sep:
        host, port_text = text, str(DEFAULT_SENTINEL_PORT)
    if not _HOST.match(host):
        raise RedisUrlError(f"sentinel host {host!r} is not a host name or address; write host:port ({EXAMPLE})")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"sentinel port {port_text!r} of {host} is not a port number (1-65535)")
    return host.strip("[]"), int(port_text)


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise RedisUrlError(f"database {text!r} is not a number; the path is /<master name>/<db> ({EXAMPLE})")
    return int(text)


def parse_sentinel_url(url: str, env: Mapping[str, str] | None = None) -> SentinelTarget:
    """`redis+sentinel://[user:password@]h1:26379,h2:26379/master[/db]` (ports default to 26379)."""
    env = os.environ if env is None else env
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisUrlError(f"not a Sentinel URL (scheme {scheme!r}); write {EXAMPLE}")
    netloc, _, path = rest.partition("/")
    netloc = netloc.split("?", 1)[0]
    path = path.split("?", 1)[0]
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    username, _, password = userinfo.partition(":") if ":" in userinfo else ("", "", userinfo)
    sentinels = tuple(_host_port(h.strip()) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise RedisUrlError(f"no sentinel host in the URL; write {EXAMPLE}")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise RedisUrlError(f"the path must be /<master name> or /<master name>/<db>; write {EXAMPLE}")
    master = unquote(parts[0])
    if not _MASTER.match(master):
        raise RedisUrlError(f"master name {master!r} may hold letters, digits, '.', '_' and '-' only")
    return SentinelTarget(
        sentinels=sentinels,
        master=master,
        db=_db(parts[1]) if len(parts) == 2 else 0,
        password=unquote(password) or None,
        username=unquote(username) or None,
        sentinel_password=env.get("REDIS_SENTINEL_PASSWORD") or None,
        ssl=scheme.lower() == "rediss+sentinel",
    )


def redis_url_from_env(env: Mapping[str, str]) -> str:
    """REDIS_URL, or a Sentinel URL built from REDIS_SENTINELS + REDIS_SENTINEL_MASTER (one or the other)."""
    sentinels = (env.get("REDIS_SENTINELS") or "").strip()
    if not sentinels:
        url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        if is_sentinel(url):
            parse_sentinel_url(url, env)  # a mistake is reported at start, not at the first request
        return url
    if env.get("REDIS_URL"):
        raise RedisUrlError("both REDIS_URL and REDIS_SENTINELS are set: set one (REDIS_URL may be a Sentinel URL)")
    master = (env.get("REDIS_SENTINEL_MASTER") or "").strip()
    if not master:
        raise RedisUrlError("REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER (the name sentinels monitor)")
    for host in sentinels.split(","):
        _host_port(host.strip())  # a bad entry is named here, before it is hidden inside a URL
    if not _MASTER.match(master):
        raise RedisUrlError(f"REDIS_SENTINEL_MASTER {master!r} may hold letters, digits, '.', '_' and '-' only")
    db = (env.get("REDIS_DB") or "0").strip()
    _db(db)
    # The password is carried separately (see `connect`'s env), never written into a URL someone may print.
    return f"redis+sentinel://{sentinels.replace(' ', '')}/{master}/{db}"


def failover_retry() -> Retry:
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), FAILOVER_RETRIES)


def connect(url: str, env: Mapping[str, str] | None = None) -> redis.Redis:
    """A client for `url`: plain (redis://, rediss://, unix://) or through Sentinel (redis+sentinel://)."""
    env = os.environ if env is None else env
    if not is_sentinel(url):
        return redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=30,
            retry_on_timeout=True,
        )
    target = parse_sentinel_url(url, env)
    password = target.password or env.get("REDIS_PASSWORD") or None
    sentinel_kwargs: dict[str, object] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        # No retry per sentinel: the client already asks the next one, and the whole lookup is retried
        # by `failover_retry` (retrying here too multiplied an outage's wait by the number of sentinels).
        "retry": Retry(NoBackoff(), 0),
    }
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    return manager.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=password,
        ssl=target.ssl,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=failover_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def shown(url: str) -> str:
    """`url` as logs, errors and `doctor` may show it: scheme, hosts, path; never a password."""
    if is_sentinel(url):
        try:
            return parse_sentinel_url(url, env={}).shown()
        except RedisUrlError:
            return url.split("://", 1)[0] + "://(unparsable URL, not shown)"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname:
        return f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}{parts.path}"
    return f"{parts.scheme}://{parts.path}" if parts.scheme else "(not shown)"
