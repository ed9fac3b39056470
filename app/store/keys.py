"""Every Redis key Sluice uses, in one place (like RQ's `keys.py`).

Nothing outside `app/store/` spells a key: it asks the store, and the store builds keys here.
All of Sluice's keys share the `sluice:` prefix; RQ's own keys (`rq:...`) belong to RQ.

  release:<id>                     JSON of the Release
  release:<id>:events              list of JSON events (append-only)
  release:<id>:evaluations         list of JSON check results (append-only)
  release:<id>:duplicates          how many times the release was announced again
  release:<id>:gates               hash "<point>/<gate>" -> what a gate answered (app/store/gate_records.py)
  release:<id>:approvals           hash "<point>/<gate>" -> who approved a manual gate
  releases                         zset id -> created_at (for listing; the index of every release)
  releases:index:<app>|<svc>|<state>  zset id -> created_at, one per filter combination ('' = any);
                                   written with the release (create, commit), read by lists and /metrics
  releases:finished                zset id -> finished_at of finished releases (retention by age)
  releases:finished:<app>|<svc>    the same per service (retention by count)
  releases:services                set of "<app>|<svc>" that have releases (retention walks it)
  releases:index-version           which index layout the stored releases have (backfill once)
  active:<app>:<service>           id of the release now moving that service's traffic
  stable:<app>:<service>           the service's stable version
  known-bad:<app>:<service>        hash version -> JSON of its KnownBad entry (app/core/known_bad.py)
  dedup:<key>                      id of the release a deploy notification started (written with it)
  delivery:<id>                    JSON of a hook delivery and its attempts
  due                              zset of due members (`tick:<release>:<seq>`, `hook:<delivery>`,
                                   `scale:<release>`, `fleet:<fleet>`) -> when
  lock:<name>                      short locks and leader leases
  event:<source>:<event id>        what a CI / GitOps event led to (receivers' once-only processing)
  k8s:restart-baseline:<release>   hash pod uid -> restart count when first seen
  release:<id>:scaled              hash target -> replicas before Sluice changed them, done:<what> marks
  fleet:<id>                       JSON of a Fleet (app/core/fleet.py); its events are release:<id>:events
                                   (so that its hook deliveries record there like a release's)
  fleets                           zset id -> created_at (listing)
  fleet-dedup:<service>:<version>  id of the fleet an announcement started (duplicates answer with it)

  metrics:counter:<name>           hash "<label values joined by \\x1f>" -> count
  metrics:hist:<name>              hash "b:<upper bound>" | "sum" | "count" -> value
  job:<id>                         JSON of a replay / backtest job: input, status, result (with a TTL)
  job-request:<kind>:<hash>        id of the job an identical request started (dedup window)
  token:<sha256 of a token>        JSON {name, role, created_at} of a person's API token (never the token)
  tokens:by-name                   hash name -> sha256 of that person's token
  audit                            list of JSON audit entries (who did what), newest first, bounded
"""

from __future__ import annotations

PREFIX = "sluice:"

RELEASES = PREFIX + "releases"
DUE = PREFIX + "due"
FINISHED = PREFIX + "releases:finished"
SERVICES = PREFIX + "releases:services"
INDEX_VERSION = PREFIX + "releases:index-version"
RQ_QUEUE = "rq:queue:sluice"  # RQ's list for the `sluice` queue (read for the queue-depth gauge)


def release(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}"


def release_events(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:events"


def release_evaluations(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:evaluations"


def release_scaled(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:scaled"


def release_duplicates(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:duplicates"


def release_gates(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:gates"


def release_approvals(release_id: str) -> str:
    return f"{PREFIX}release:{release_id}:approvals"


def release_index(application: str = "", service: str = "", state: str = "") -> str:
    """The listing index for one filter combination; '' means any. All three empty: RELEASES.
    '|' cannot occur in an application, service or state name (app/core/names.py), so keys never collide."""
    if not (application or service or state):
        return RELEASES
    return f"{PREFIX}releases:index:{application}|{service}|{state}"


def release_indexes(application: str, service: str, state: str) -> tuple[list[str], list[str]]:
    """The indexes a release is in: (those that do not depend on its state, those that do)."""
    stateless = [release_index(a, s) for a in ("", application) for s in ("", service)]
    stateful = [release_index(a, s, state) for a in ("", application) for s in ("", service)]
    return stateless, stateful


def finished_by_service(application: str, service: str) -> str:
    return f"{PREFIX}releases:finished:{application}|{service}"


def service_member(application: str, service: str) -> str:
    """A member of SERVICES."""
    return f"{application}|{service}"


def active(application: str, service: str) -> str:
    return f"{PREFIX}active:{application}:{service}"


def stable(application: str, service: str) -> str:
    return f"{PREFIX}stable:{application}:{service}"


def known_bad(application: str, service: str) -> str:
    return f"{PREFIX}known-bad:{application}:{service}"


def dedup(dedup_key: str) -> str:
    return f"{PREFIX}dedup:{dedup_key}"


def deploy_dedup(application: str, service: str, version: str) -> str:
    """The dedup key of a version of a service: the webhook and the watcher share it."""
    return f"deploy:{application}:{service}:{version}"


def shadow_dedup(deploy_key: str) -> str:
    """The dedup key of a shadow release of a version: apart from the live release's (app/release/shadow.py)."""
    return f"{deploy_key}:shadow"


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def lock(name: str) -> str:
    return f"{PREFIX}lock:{name}"


def release_lock(release_id: str) -> str:
    """The lock a tick and a steering action take on a release."""
    return lock(f"release:{release_id}")


def delivery_lock(delivery_id: str) -> str:
    return lock(f"delivery:{delivery_id}")


def event(source: str, event_key: str) -> str:
    return f"{PREFIX}event:{source}:{event_key}"


def restart_baseline(release_id: str) -> str:
    return f"{PREFIX}k8s:restart-baseline:{release_id}"


def metrics_counter(name: str) -> str:
    return f"{PREFIX}metrics:counter:{name}"


def metrics_histogram(name: str) -> str:
    return f"{PREFIX}metrics:hist:{name}"


# --- members of the `due` zset ---------------------------------------------------------------------


def tick_member(release_id: str, seq: int) -> str:
    return f"tick:{release_id}:{seq}"


def hook_member(delivery_id: str) -> str:
    return f"hook:{delivery_id}"


def scale_member(release_id: str) -> str:
    """The replicas work after a release ends (app/release/scaling.py `finish`)."""
    return f"scale:{release_id}"


def fleet(fleet_id: str) -> str:
    return f"{PREFIX}fleet:{fleet_id}"


def fleet_events(fleet_id: str) -> str:
    """A fleet's events share the release event-log key: its hook deliveries (workers/deliver.py)
    record their attempts under the delivery's `release_id`, which for a fleet's own hooks is the fleet."""
    return release_events(fleet_id)


def fleet_dedup(service: str, version: str) -> str:
    return f"{PREFIX}fleet-dedup:{service}:{version}"


FLEETS = PREFIX + "fleets"


def fleet_member(fleet_id: str) -> str:
    """A fleet's next look at its waves (app/release/fleets.py `advance`)."""
    return f"fleet:{fleet_id}"


def parse_due_member(member: str) -> tuple[str, str, int | None]:
    """`tick:<release>:<seq>` -> ("tick", release, seq); `hook:<delivery>` -> ("hook", delivery, None);
    anything else -> ("", member, None)."""
    kind, _, rest = member.partition(":")
    if kind == "tick":
        release_id, _, seq = rest.rpartition(":")
        if release_id and seq.isdigit():
            return "tick", release_id, int(seq)
    elif kind in ("hook", "scale", "fleet") and rest:
        return kind, rest, None
    return "", member, None


def job(job_id: str) -> str:
    """JSON of a replay or backtest job (app/store/jobs.py), kept for the configured result TTL."""
    return f"{PREFIX}job:{job_id}"


def job_request(kind: str, digest: str) -> str:
    """Id of the job a request (its kind and a hash of its input) started, for the dedup window."""
    return f"{PREFIX}job-request:{kind}:{digest}"


def person_token(digest: str) -> str:
    """JSON {name, role, created_at} of a person's API token, by the SHA-256 hex of the token (app/store/people.py)."""
    return f"{PREFIX}token:{digest}"


PEOPLE = PREFIX + "tokens:by-name"  # hash name -> digest of that person's token (one token a name)
AUDIT = PREFIX + "audit"  # list of JSON audit entries, newest first, trimmed to a bound
