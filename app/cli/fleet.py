"""`sluice fleet list|show|watch|approve|abort`: a fleet as one thing, with its waves and each member's state."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich import box
from rich.table import Table

from app.cli.client import ApiClientError, SluiceClient
from app.cli.report import clock, console, err

# `sluice fleet watch` exits with this per fleet end, as `sluice watch` does per release end.
EXIT_FOR_FLEET = {"succeeded": 0, "failed": 1, "rolled_back": 1, "held": 1, "aborted": 2}
_STYLE = {
    "succeeded": "bold green",
    "failed": "bold red",
    "rolled_back": "bold red",
    "held": "bold yellow",
    "aborted": "bold yellow",
    "rolling_back": "red",
    "running": "cyan",
    "pending": "dim",
    "waiting": "dim",
}


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/] {message}")
    sys.exit(code)


def _styled(state: str) -> str:
    return f"[{_STYLE.get(state, '')}]{state}[/]"


def _seconds(value: float | None) -> str:
    return f"{value:.0f}s" if value is not None else "—"


def summary_line(fleet: dict[str, Any]) -> str:
    waves = len(fleet["waves"])
    return (
        f"{fleet['id']}  {fleet['service']} {fleet['version']}  {_styled(fleet['state'])}  "
        f"wave {fleet['current_wave']}/{waves}  {_seconds(fleet['duration_seconds'])}  "
        f"started {clock(fleet['created_at'])}"
    )


def waves_table(fleet: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("wave", "took", "application", "release", "state", "step", "note"):
        table.add_column(name, no_wrap=name not in ("note",), overflow="fold")
    for wave in fleet["waves"]:
        for i, m in enumerate(wave["members"]):
            note = m.get("reason") or ""
            if m.get("rolled_back_by"):
                note = f"rolled back ({m['rolled_back_by']})"
            table.add_row(
                f"{wave['number']} {_styled(wave['state'])}" if i == 0 else "",
                _seconds(wave["duration_seconds"]) if i == 0 else "",
                m["application"],
                m.get("release") or "—",
                _styled(m["state"]),
                str(m.get("current_step") or "—"),
                note if len(note) <= 90 else note[:89] + "…",
            )
    return table


def show_fleet(fleet: dict[str, Any]) -> None:
    console.print(summary_line(fleet))
    if fleet.get("reason"):
        console.print(f"  {fleet['reason']}")
    if fleet.get("awaiting_approval"):
        console.print(
            f"  [yellow]wave {fleet['awaiting_approval']} waits for approval:[/] sluice fleet approve {fleet['id']}"
        )
    console.print(waves_table(fleet))


@click.group()
def fleet() -> None:
    """Fleets: one version released over several applications in waves (docs/fleets.md)."""


@fleet.command("list")
@click.option("--service")
@click.option("--url", envvar="SLUICE_URL")
def list_fleets(service: str | None, url: str | None) -> None:
    """The fleets, newest first."""
    try:
        listing = SluiceClient(url).fleets(service)
    except ApiClientError as exc:
        _fail(str(exc))
        return
    for f in listing["fleets"]:
        console.print(summary_line(f))
    if not listing["fleets"]:
        console.print("no fleets")


@fleet.command("show")
@click.argument("fleet_id")
@click.option("--url", envvar="SLUICE_URL")
def show(fleet_id: str, url: str | None) -> None:
    """One fleet: each wave, each member release and its state."""
    try:
        show_fleet(SluiceClient(url).fleet(fleet_id))
    except ApiClientError as exc:
        _fail(str(exc))


@fleet.command("watch")
@click.argument("fleet_id")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", default=0.0, help="Give up after this many seconds (0: never). Exit 3.")
@click.option("--url", envvar="SLUICE_URL")
def watch(fleet_id: str, interval: float, timeout: float, url: str | None) -> None:
    """Follow a fleet wave by wave; exit 0 when it succeeded, 1 when it failed, 2 when aborted."""
    client = SluiceClient(url)
    started = time.monotonic()
    seen: dict[int, str] = {}
    while True:
        try:
            data = client.fleet(fleet_id)
        except ApiClientError as exc:
            _fail(str(exc))
            return
        for wave in data["waves"]:
            if seen.get(wave["number"]) != wave["state"] and wave["state"] != "pending":
                seen[wave["number"]] = wave["state"]
                apps = ", ".join(f"{m['application']}: {m['state']}" for m in wave["members"])
                console.print(f"{clock(time.time())}  wave {wave['number']} {_styled(wave['state'])}  ({apps})")
        if data["state"] in EXIT_FOR_FLEET:
            show_fleet(data)
            sys.exit(EXIT_FOR_FLEET[data["state"]])
        if timeout and time.monotonic() - started > timeout:
            err.print(f"gave up after {timeout:.0f}s; the fleet is {data['state']}")
            sys.exit(3)
        time.sleep(interval)


@fleet.command("abort")
@click.argument("fleet_id")
@click.option("--reason", default="", help="Why (recorded on the fleet).")
@click.option("--url", envvar="SLUICE_URL")
def abort(fleet_id: str, reason: str, url: str | None) -> None:
    """Stop a fleet: its releases in flight go back to stable; applications already done keep the version."""
    try:
        show_fleet(SluiceClient(url).abort_fleet(fleet_id, reason))
    except ApiClientError as exc:
        _fail(str(exc))


@fleet.command("approve")
@click.argument("fleet_id")
@click.option("--url", envvar="SLUICE_URL")
def approve(fleet_id: str, url: str | None) -> None:
    """Let the wave the fleet waits for start (`approve_before` in the fleet's configuration)."""
    try:
        show_fleet(SluiceClient(url).approve_fleet(fleet_id))
    except ApiClientError as exc:
        _fail(str(exc))
