"""`sluice demo`: a real release on this machine, through real HAProxy, judged by a real Prometheus.

It starts, in a temporary folder and on loopback only: Redis, three versions of the demo
service under gunicorn (1.0.370 stable, 1.0.371 good, 1.0.372 bad), HAProxy in front of
them, Prometheus scraping them every second, steady load, Sluice's web process and a
worker, and a local webhook receiver standing in for CI. It releases the good version
(promoted), then the bad one (rolled back), and stops everything it started.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from app.cli.demo.sandbox import BAD, DEMO_VERSIONS, GOOD, SEGMENT_HEADER, SEGMENT_REGEX, SERVICE, STABLE, DemoStack
from app.cli.demo.traffic import LoadGenerator, reaction_times, segment_traffic

# The e2e tests import the demo's pieces from here, where `sluice demo` puts them together.
__all__ = [
    "BAD",
    "DEMO_VERSIONS",
    "GOOD",
    "SERVICE",
    "STABLE",
    "DemoStack",
    "LoadGenerator",
    "reaction_times",
    "run_demo",
    "segment_traffic",
]


def run_demo(keep: bool = False, console: Console | None = None) -> int:
    from app.cli.report import WIDTH, follow

    out = console or Console(highlight=False, width=WIDTH)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    stack = DemoStack(workdir, segment=True)
    load: LoadGenerator | None = None
    started = time.monotonic()
    try:
        stack.start(say=lambda m: out.print(f"[dim]·[/] {m}"))
        load = LoadGenerator(stack.frontend_url, segment_every=4).start()
        stack.wait_for_scrapes()
        if not stack.doctor(out):
            out.print("[red]sluice doctor found a problem with the demo's wiring; stopping.[/]")
            return 1
        env_file = workdir / "sluice.env"
        env_file.write_text(f"export SLUICE_URL={stack.api_url}\nexport SLUICE_API_TOKEN={stack.token}\n")
        env_file.chmod(0o600)
        out.print(
            f"\nDashboard and API at {stack.api_url} (log in with the SLUICE_API_TOKEN in {env_file}); "
            f"to use the CLI against it meanwhile: source {env_file} && sluice status\n"
        )
        client = stack.client()
        results = {}
        for version, expect in ((GOOD, "succeeded"), (BAD, "failed")):
            out.rule(f"[bold]release {SERVICE} {version}[/] (expected: {expect})")
            t0 = time.time()
            answer = client.deploy(
                SERVICE,
                version,
                application="bluesky",
                ci={"provider": "demo", "build_url": "http://127.0.0.1/demo/build/1"},
            )
            out.print(
                f"deploy notification -> release {answer['release']} ({answer['source_version']} -> "
                f"{answer['target_version']}, policy {answer['policy']})"
            )
            code = follow(client, answer["release"], interval=0.5, timeout=240, out=out)
            release = client.release(answer["release"])
            traffic = load.between(t0, time.time())
            out.print(
                "requests answered during the release, by version: "
                + ", ".join(f"{v}: {n}" for v, n in sorted(traffic.items()))
            )
            _report_segment(out, load, release)
            results[version] = (release, code, t0)
        _report_reaction(out, load, results[BAD][0], results[BAD][2])
        if stack.receiver:
            events = [
                f"{r['event']}({'signed' if r['verified'] else 'BAD SIGNATURE'})" for r in stack.receiver.received
            ]
            out.print(f"webhooks received by the stand-in CI: {', '.join(events) or 'none'}")
        ok = results[GOOD][0]["state"] == "succeeded" and results[BAD][0]["state"] == "failed"
        out.rule("summary")
        for version, (release, _, _) in results.items():
            out.print(
                f"{version}: [bold]{release['state']}[/] after {release['duration_seconds']:.0f}s — {release['reason']}"
            )
        out.print(
            f"{'[green]demo passed' if ok else '[red]demo did not go as expected'}[/] in "
            f"{time.monotonic() - started:.0f}s"
        )
        return 0 if ok else 1
    finally:
        if load:
            load.stop()
        stack.stop()
        if keep:
            out.print(f"kept {workdir} (configs and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _report_segment(out: Console, load: LoadGenerator, release: dict[str, Any]) -> None:
    seen = segment_traffic(load, release)
    if seen is None:
        return

    def line(counts: Counter[str]) -> str:
        return ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())) or "none"

    out.print(
        f"segment step ({SEGMENT_HEADER} ~ /{SEGMENT_REGEX}/ -> {release['target_version']}): requests with the "
        f"header were answered by {line(seen[True])}; without it by {line(seen[False])}"
    )


def _report_reaction(out: Console, load: LoadGenerator, release: dict[str, Any], t0: float) -> None:
    times = reaction_times(load, release, t0)
    if times["to_weight_zero"] is None:
        out.print("reaction time: not measurable (no error seen from the bad version)")
        return
    last = times["to_last_response"]
    out.print(
        f"reaction: {times['to_weight_zero']:.1f}s from the bad version's first error to Sluice taking its "
        f"traffic away in HAProxy (weight 0, segment removed)"
        + (f"; last response it served came {last:.1f}s after that first error" if last is not None else "")
    )
