"""Human-readable views of a release for the terminal: a progress line and a table of checks per step."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from app.cli.client import ApiClientError, SluiceClient
from app.core.decide import format_value

# Wide enough for the checks table even when output goes to a CI log (not a terminal).
WIDTH = max(120, shutil.get_terminal_size((120, 40)).columns)
console = Console(highlight=False, width=WIDTH)
err = Console(stderr=True, highlight=False, width=WIDTH)
EXIT_FOR_STATE = {"succeeded": 0, "failed": 1, "aborted": 2}

_MARK = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "no_data": "[yellow]no data[/]",
    "insufficient": "[yellow]waiting[/]",  # not enough evidence yet either way
}


def _value(value: float | None) -> str:
    return format_value(value, missing="—")


_STATE_STYLE = {
    "succeeded": "bold green",
    "failed": "bold red",
    "aborted": "bold yellow",
    "running": "cyan",
    "paused": "magenta",
    "pending": "dim",
}


def clock(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts or 0, tz=dt.UTC).strftime("%H:%M:%S") if ts else "—"


def progress_line(release: dict[str, Any]) -> str:
    steps = release.get("steps") or []
    step = release.get("current_step")
    weights = release.get("weights") or {}
    target = release["target_version"]
    parts = [f"[{_STATE_STYLE.get(release['state'], '')}]{release['state']}[/]"]
    shadow = release.get("mode") == "shadow"
    if shadow:  # judged only: the weights shown are the router's, which Sluice did not change
        parts[0] += " [magenta]\\[shadow][/]"
        weights = release.get("observed_weights") or {}
    if step:
        parts.append(f"step {step}/{len(steps)}")
    parts.append(f"{weights.get(target, 0)}% -> {target}" + (" (traffic not moved by Sluice)" if shadow else ""))
    latest: dict[str, dict[str, Any]] = {}
    for ev in release.get("evaluations", []):
        latest[ev["name"]] = ev
    if latest:
        parts.append(", ".join(f"{n} {_value(e['value'])} {_MARK.get(e['verdict'], '')}" for n, e in latest.items()))
    if release.get("reason"):
        parts.append(f"[dim]{release['reason']}[/]")
    return " · ".join(parts)


def checks_table(release: dict[str, Any]) -> Table:
    """One row per (step, check): evaluations, last value, range, threshold, worst verdict."""
    steps = release.get("steps") or []
    table = Table(
        title=f"{release['service']} {release['source_version']} -> {release['target_version']}: {release['state']}",
        title_justify="left",
    )
    for col in ("step", "weight", "check", "evals", "last", "min..max", "threshold", "verdict", "last word"):
        table.add_column(col, justify="right" if col in ("evals", "last", "weight") else "left")
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for ev in release.get("evaluations", []):
        groups.setdefault((ev["step"], ev["name"]), []).append(ev)
    for (step, name), evs in sorted(groups.items()):
        values = [e["value"] for e in evs if e["value"] is not None]
        verdicts = {e["verdict"] for e in evs}
        worst = "fail" if "fail" in verdicts else evs[-1]["verdict"]
        weight = steps[step]["weight"] if step < len(steps) else "?"
        table.add_row(
            str(step + 1),
            f"{weight}%",
            name,
            str(len(evs)),
            _value(evs[-1]["value"]),
            f"{_value(min(values))}..{_value(max(values))}" if values else "—",
            evs[-1]["threshold"],
            _MARK.get(worst, worst),
            # The evidence in words: "errors 3.1% vs stable 0.4% (n=812 vs 7,310): worse by ..."
            next((e["detail"] for e in reversed(evs) if e["verdict"] == worst and e.get("detail")), ""),
        )
    return table


def follow(
    client: SluiceClient,
    release_id: str,
    interval: float = 1.0,
    timeout: float = 0.0,
    out: Console | None = None,
) -> int:
    """Poll a release until it ends (`sluice watch`, the demo): 0 succeeded, 1 failed, 2 aborted,
    3 timed out, 4 not found or unreachable."""
    out = out or console
    started = time.monotonic()
    last = None
    errors = 0
    while True:
        try:
            data = client.release(release_id)
            errors = 0
        except ApiClientError as exc:
            if exc.status == 404:
                err.print(f"[red]error:[/] {exc}")
                return 4
            errors += 1
            if errors >= 30:
                err.print(f"[red]error:[/] {exc}")
                return 4
            time.sleep(interval)
            continue
        line = progress_line(data)
        if line != last:
            out.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}")
            last = line
        if data["state"] in EXIT_FOR_STATE:
            out.print(checks_table(data))
            return EXIT_FOR_STATE[data["state"]]
        if timeout and time.monotonic() - started > timeout:
            err.print(f"gave up waiting after {timeout:.0f}s; the release is still {data['state']}")
            return 3
        time.sleep(interval)
