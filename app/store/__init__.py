"""The store: everything that must survive a restart, in Redis. Only this package talks to Redis.

keys.py     every key and key pattern (the list is there)
store.py    Store: one object for all of it, assembled from the parts below (its API is theirs)
release_records.py  reading releases, creating one per deploy notification (dedup)
commits.py  committing a decision in one Lua script (commit_script.py), fenced by the release's lock or lease
schedule.py hook deliveries and the `due` schedule
locks.py    locks, leases (Lease) and leader leases
connection.py  `connect`: the one Redis client factory (a URL, or Sentinel) and `shown` (no password)
listing.py  pages of releases from the listing indexes (offset or cursor)
retention.py  deleting finished releases past their retention, in batches; backfilling indexes
metrics.py  MetricsStore (`Store.metrics`): Sluice's own counters, histograms and gauges
"""

from __future__ import annotations

from redis import RedisError as StoreUnavailable
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import TimeoutError as StoreTimeoutError

from app.store import keys
from app.store.connection import connect
from app.store.keys import PREFIX
from app.store.listing import BadCursor, ReleasePage
from app.store.locks import LeaseLost
from app.store.release_records import DEDUP_TTL, DedupBusy, new_release_id
from app.store.store import Store

# Redis cannot be reached (down, restarting, failing over, or too slow): worth a retry later.
UNREACHABLE: tuple[type[Exception], ...] = (StoreConnectionError, StoreTimeoutError)

__all__ = [
    "BadCursor",
    "DEDUP_TTL",
    "PREFIX",
    "DedupBusy",
    "LeaseLost",
    "ReleasePage",
    "Store",
    "StoreUnavailable",
    "UNREACHABLE",
    "connect",
    "keys",
    "new_release_id",
]
