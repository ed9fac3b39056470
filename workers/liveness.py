"""A liveness signal for the processes that serve no HTTP (worker, watcher).

Each touches a file in its loop (`beat`); the container's liveness probe checks the file's age:

    python -m workers.liveness check worker 600     # exit 0 if /tmp/sluice-alive-worker is fresh

The check reads no configuration and talks to no Redis, so it answers in a fraction of a second and
says only whether the loop still turns. A worker whose RQ loop retries an unreachable Redis keeps
beating (RQ heartbeats between retries): restarting it would not bring Redis back. The files live in
SLUICE_LIVENESS_DIR, else the temporary directory (TMPDIR, normally /tmp: an emptyDir in
deploy/sluice.yaml, whose root filesystem is read-only).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROLE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
USAGE = "usage: python -m workers.liveness check ROLE MAX_AGE_SECONDS"


def path(role: str) -> Path:
    if not ROLE.match(role):
        raise ValueError(f"role {role!r} must be lowercase letters, digits and '-'")
    return Path(os.environ.get("SLUICE_LIVENESS_DIR") or tempfile.gettempdir()) / f"sluice-alive-{role}"


def beat(role: str) -> None:
    """Mark `role`'s loop as alive now. Never raises: a full or read-only disk must not stop the work
    (the probe then fails, which is the right signal)."""
    with contextlib.suppress(OSError):
        path(role).touch()  # an existing file gets the current time


def age(role: str, now: float | None = None) -> float | None:
    """Seconds since `role` last beat, or None if it never did."""
    try:
        mtime = path(role).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def check(role: str, max_age: float) -> tuple[bool, str]:
    seconds = age(role)
    if seconds is None:
        return False, f"{role}: no heartbeat at {path(role)} yet"
    if seconds > max_age:
        return False, f"{role}: last heartbeat {seconds:.0f} s ago (limit {max_age:.0f} s)"
    return True, f"{role}: alive, last heartbeat {seconds:.0f} s ago"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        ok, message = check(argv[1], float(argv[2]))
    except ValueError as exc:
        print(f"{exc}\n{USAGE}", file=sys.stderr)
        return 2
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
