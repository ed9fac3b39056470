"""Human-readable views of a release for the terminal: a progress line and a table of checks per step."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import Any

from rich import box
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
    "baking": "blue",
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
    label = release.get("step_label")
    if step:
        parts.append(f"step {step}/{len(steps)}")
    if label and label.startswith(("segment", "mirror")) and not shadow:
        parts.append(f"{label} -> {target}")  # "0% -> v2" would hide the segment it does send
    else:
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
    """One row per (step, check): evaluations, last value, threshold, worst verdict, the evidence in
    words. Fits 120 columns with each check on a line or two: the short columns never wrap (a cut
    check name or a step over three lines is unreadable), only the evidence does; a segment or
    mirror step is named in full under the table."""
    steps = release.get("steps") or []
    labels = release.get("step_labels") or [f"{s['weight']}%" for s in steps]
    table = Table(
        title=f"{release['service']} {release['source_version']} -> {release['target_version']}: {release['state']}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ("step", "check", "evals", "last", "threshold", "verdict"):
        table.add_column(col, justify="right" if col in ("evals", "last") else "left", no_wrap=True)
    table.add_column("last word", overflow="fold")
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for ev in release.get("evaluations", []):
        groups.setdefault((ev["step"], ev["name"]), []).append(ev)
    for (step, name), evs in sorted(groups.items()):
        verdicts = {e["verdict"] for e in evs}
        worst = "fail" if "fail" in verdicts else evs[-1]["verdict"]
        label = labels[step] if step < len(labels) else "?"
        table.add_row(
            f"{step + 1} {label.split(' ', 1)[0]}",  # "1 segment", "2 10%": a segment in full under the table
            name,
            str(len(evs)),
            _value(evs[-1]["value"]),
            evs[-1]["threshold"],
            _MARK.get(worst, worst),
            # The evidence in words: "errors 3.1% vs stable 0.4% (n=812 vs 7,310): worse by ..."
            next((e["detail"] for e in reversed(evs) if e["verdict"] == worst and e.get("detail")), ""),
        )
    shaped = [f"step {i + 1}: {label}" for i, label in enumerate(labels) if not label.endswith("%")]
    if shaped:
        table.caption, table.caption_justify = "; ".join(shaped), "left"
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
