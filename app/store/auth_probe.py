"""Does a Redis server answer someone with no credentials? (`sluice doctor`'s `redis auth` check.)

Its own connection, with no username or password whatever REDIS_URL holds, so that the answer is
the one a stranger on the network would get.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from app.store.connection import CONNECT_TIMEOUT


def answers_without_auth(url: str) -> bool | None:
    """True: PING answered with no credentials; False: Redis asked for them; None: no answer at all."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        kwargs: dict[str, object] = {"unix_socket_path": parts.path}
    else:
        kwargs = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 6379, "ssl": parts.scheme == "rediss"}
    client = redis.Redis(socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT, **kwargs)  # type: ignore[arg-type]
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return False
    except redis.ResponseError as exc:  # NOAUTH from servers that answer before asking
        return False if "NOAUTH" in str(exc).upper() else None
    except redis.RedisError:
        return None  # unreachable: check_redis already says so
    finally:
        client.close()
