"""What a `sluice doctor` check finds (`Finding`: pass, warn or fail, with how to fix it), and the
checklist printed from the findings. Imports nothing of the project: every check module builds these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def passed(findings: list[Finding]) -> bool:
    """All pass (warnings allowed)."""
    return all(f.status != "fail" for f in findings)


MARKS = {"pass": "[green]✔[/]", "warn": "[yellow]![/]", "fail": "[red]✘[/]"}


def render(findings: list[Finding], markup: bool = True) -> str:
    """The checklist, one line per check and an indented fix under each warning or failure."""
    lines = []
    for f in findings:
        mark = MARKS[f.status] if markup else {"pass": "ok  ", "warn": "warn", "fail": "FAIL"}[f.status]
        lines.append(f"{mark} {f.name}: {f.detail}")
        if f.fix and f.status != "pass":
            lines.append(f"    fix: {f.fix}")
    fails = sum(f.status == "fail" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    lines.append(f"{len(findings)} checks: {fails} failed, {warns} warning(s)")
    return "\n".join(lines)
