"""Footprint: resident memory of Sluice's processes, idle and holding N releases."""

from __future__ import annotations

from benchmarks.common import table


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
