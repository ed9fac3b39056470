"""Footprint: resident memory of Sluice's processes, idle and holding N releases."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import table


def redis_per_release(workdir: Path, n: int = 5000, services: int = 50) -> dict[str, float]:
    """Redis memory per release, without workers: `n` releases created through the store, then each
    finished with one decision (3 evaluations, 1 event); and how much of it is the listing and
    retention indexes (app/store/keys.py), measured by deleting them at the end."""
    import redis

    from app.cli.demo.stack import start_redis
    from app.core.models import CheckResult, Event, Release
    from app.store import Store, keys

    workdir.mkdir(parents=True, exist_ok=True)  # start_redis runs Redis in it
    proc, url = start_redis(workdir)
    try:
        client = redis.Redis.from_url(url)
        store = Store(client)

        def used() -> int:
            return int(client.info("memory")["used_memory"])

        base = used()
        releases = []
        for i in range(n):
            svc = f"svc-{i % services:03d}"
            rel = Release(
                id=f"r-20261130000000-{i:08x}",
                application="bench",
                namespace="default",
                service=svc,
                source_version="1.0.0",
                target_version=f"2.0.{i}",
                policy="p",
                created_at=1.7e9 + i,
                updated_at=1.7e9 + i,
            )
            created_event = Event(at=0, type="created", message="")
            store.create(rel, keys.deploy_dedup("bench", svc, rel.target_version), created_event)
            releases.append(rel)
        created = used()
        for rel in releases:
            results = [
                CheckResult(name=c, step=0, at=0, value=0.01, threshold="<= stable + 1 pt", verdict="pass")
                for c in ("errors", "slow", "traffic")
            ]
            done = rel.model_copy(update={"state": "succeeded", "seq": 1, "finished_at": rel.created_at + 60})
            store.commit(done, results=results, events=[Event(at=0, type="succeeded", message="")], previous_seq=0)
        finished = used()
        client.delete(*client.scan_iter(keys.PREFIX + "releases:*"))
        without_indexes = used()
        client.close()
        return {
            "n": n,
            "created": (created - base) / n,
            "finished": (finished - base) / n,
            "indexes": (finished - without_indexes) / n,
        }
    finally:
        proc.stop()


def redis_table(m: dict[str, float]) -> str:
    return (
        table(
            ["releases", "Redis B / release created", "finished (3 evaluations, 2 events)", "of which indexes"],
            [[m["n"], f"{m['created']:.0f}", f"{m['finished']:.0f}", f"{m['indexes']:.0f}"]],
        )
        + "\n\nRedis `used_memory` per release through the store alone (no worker). A real release adds its "
        "evaluations and events each tick: the scale table's last column has it after ticking."
    )


def report(scale_results: list[dict], watcher: dict[int, float] | None = None) -> str:
    rows = []
    for r in scale_results:
        if r["workers"] != 1:
            continue
        rows.append(
            [
                r["n"],
                f"{r['idle_web_rss']:.0f}",
                f"{r['web_rss']:.0f}",
                f"{r['idle_worker_rss']:.0f}",
                f"{r['worker_rss']:.0f}",
            ]
        )
    return (
        table(
            [
                "releases in flight",
                "web idle MiB (gunicorn master + 2 workers)",
                "web after serving release lists MiB",
                "worker before releases tick MiB",
                "worker while ticking them MiB",
            ],
            rows,
        )
        + "\n\nResident memory (VmRSS) of each process tree, from the scale runs with one worker."
        + (_watcher_table(watcher) if watcher else "")
    )


def _watcher_table(watcher: dict[int, float]) -> str:
    rows = [["idle (nothing to watch)" if n == 0 else n, f"{mib:.0f}"] for n, mib in watcher.items()]
    return (
        "\n\n"
        + table(["Deployments watched", "watcher MiB"], rows)
        + "\n\n`sluice watcher` listing and watching Deployments on the fake Kubernetes API server "
        "(tests/support/fake_apiserver.py), one Deployment per configured service."
    )
