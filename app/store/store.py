"""The Store: Sluice's records in Redis, behind methods that say what they do.

Keys are built in `app/store/keys.py` (the list is there). The methods are grouped by topic:
release_records.py (reading and creating releases), commits.py (a decision in one Lua script),
schedule.py (deliveries and the `due` set), locks.py (locks, leases, fencing); per-service pointers,
known-bad versions, receivers' once-only events and restart baselines are here. Helpers hang off
the Store: `metrics`, `jobs`, `gates`, `retention`, `scaling`, `fleets`.
"""

from __future__ import annotations

from typing import Any

import redis

from app.core.known_bad import KnownBad
from app.store import keys, rate_limits
from app.store.commits import Commits
from app.store.fleets import FleetStore
from app.store.gate_records import GateStore
from app.store.jobs import JobStore
from app.store.locks import DELETE_IF_EQUAL
from app.store.metrics import MetricsStore
from app.store.people import PeopleStore
from app.store.rate_limits import Count, with_limit
from app.store.release_records import Releases
from app.store.retention import Retention
from app.store.scaling import ScalingStore
from app.store.schedule import DueSchedule

# SET NX GET (claim_event) behind the receivers' count (app/store/rate_limits.py): one round trip for both.
_CLAIM_EVENT = with_limit("return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2], 'GET')")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Store(Releases, Commits, DueSchedule):
    def __init__(self, client: redis.Redis):
        self.r = client  # for RQ (workers/worker.py) and tests; Sluice's own code calls the methods
        self.metrics = MetricsStore(client)
        self.jobs = JobStore(client)  # replay and backtest jobs (app/store/jobs.py)
        self.gates = GateStore(client)
        self.people = PeopleStore(client)  # people's API tokens and the audit log (app/store/people.py)
        self.retention = Retention(client)
        self.scaling = ScalingStore(client)
        self.fleets = FleetStore(client)  # releases over several applications in waves (app/store/fleets.py)
        self._init_locks()
        self._init_releases()
        self._claim_event = client.register_script(_CLAIM_EVENT)

    # --- per-service pointers -----------------------------------------------------------------------

    def stable_version(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.stable(application, service))
        return _text(v) if v else None

    def active_release(self, application: str, service: str) -> str | None:
        v = self.r.get(keys.active(application, service))
        return _text(v) if v else None

    def set_active(self, application: str, service: str, release_id: str) -> None:
        self.r.set(keys.active(application, service), release_id)

    # --- known-bad versions (app/core/known_bad.py) -------------------------------------------------------

    def known_bad(self, application: str, service: str) -> list[KnownBad]:
        """The service's known-bad versions, newest first."""
        raws = self.r.hvals(keys.known_bad(application, service))
        return sorted((KnownBad.model_validate_json(x) for x in raws), key=lambda k: -k.at)

    def known_bad_version(self, application: str, service: str, version: str) -> KnownBad | None:
        raw = self.r.hget(keys.known_bad(application, service), version)
        return KnownBad.model_validate_json(raw) if raw else None

    def clear_known_bad(self, application: str, service: str, version: str) -> KnownBad | None:
        """Forget that a version is bad; returns the entry that was there (None: it was not known-bad).
        The version's deploy dedup key goes with it when it names a finished release, so that the next
        announcement starts a new release rather than answering with the old one as a duplicate."""
        entry = self.known_bad_version(application, service, version)
        if entry is None:
            return None
        dedup_key = keys.dedup(keys.deploy_dedup(application, service, version))
        rid = self.r.get(dedup_key)
        previous = self.get(_text(rid)) if rid else None
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(keys.known_bad(application, service), version)
        if previous is not None and previous.terminal:
            pipe.eval(DELETE_IF_EQUAL, 1, dedup_key, previous.id)
        pipe.execute()
        return entry

    # --- receivers: their rate limit ---------------------------------------------------------------------

    def count_request(self, count: Count) -> None:
        """Count a request against its limits now (app/store/rate_limits.py), unless a script with the
        count before it already did; RateLimited when full."""
        rate_limits.count_now(self.r, count)

    # --- receivers: once-only processing of a sender's events ----------------------------------------

    def claim_event(self, source: str, event_key: str, marker: str, ttl: int, count: Count | None = None) -> str | None:
        """Claim an event (SET NX with a TTL). None: ours to process; otherwise what its first delivery
        recorded. SET NX GET (Redis 7): claim and read what was there in one round trip, with the
        receivers' `count` before it when it is not counted yet (RateLimited: nothing claimed)."""
        key = keys.event(source, event_key)
        if count is None or count.done:
            seen = self.r.set(key, marker, nx=True, ex=ttl, get=True)
        else:
            seen = rate_limits.run(self._claim_event, self.r, count, [key], [marker, ttl])
        return None if seen is None else _text(seen)

    def settle_event(self, source: str, event_key: str, outcome: str | None, ttl: int) -> None:
        """Record what an event led to for `ttl` seconds; None forgets it (its retry is welcome)."""
        key = keys.event(source, event_key)
        if outcome is None:
            self.r.delete(key)
        else:
            self.r.set(key, outcome, ex=ttl)

    # --- Kubernetes: restart baselines ------------------------------------------------------------------

    def restart_baselines(self, release_id: str, first_seen: dict[str, int], ttl: int) -> dict[str, int]:
        """Each pod's restart count when the release first saw it: `first_seen` is kept for pods not
        seen before (HSETNX, so every worker agrees), and the kept baselines are returned."""
        if not first_seen:
            return {}
        key = keys.restart_baseline(release_id)
        pipe = self.r.pipeline(transaction=False)
        for uid, count in first_seen.items():
            pipe.hsetnx(key, uid, count)
        pipe.hmget(key, list(first_seen))
        pipe.expire(key, ttl)
        baselines = pipe.execute()[-2]
        return {uid: int(b or 0) for uid, b in zip(first_seen, baselines, strict=True)}

    def ping(self) -> bool:
        return bool(self.r.ping())

    def persistence(self) -> dict[str, str]:
        """Redis's persistence settings (`appendonly`, `save`), for `sluice doctor`."""
        out: dict[str, str] = {}
        for name in ("appendonly", "save"):
            out.update({_text(k): _text(v) for k, v in dict(self.r.config_get(name)).items()})
        return out
