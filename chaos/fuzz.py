"""The fuzz run: the project's own hypothesis fuzz test (tests/web/test_hostile_input.py) with
5,000 generated requests (`SLUICE_FUZZ_EXAMPLES`) instead of the 600 `make test` sends.

Every route, with and without each kind of token, with bodies from valid payloads to binary
garbage and 3,000 nested brackets; the test fails on any 5xx or any non-JSON 4xx. It runs in its
own process (its own Redis, from the test fixtures) beside the fault phases.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scenarios.harness import REPO

TEST = "tests/web/test_hostile_input.py::test_fuzz_every_endpoint_with_and_without_tokens_never_5xx"
EXAMPLES = 5000


@dataclass
class FuzzRun:
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    examples: int

    def result(self, timeout: float = 900.0) -> tuple[bool, str, float]:
        """(passed, what it said, seconds)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        summary = next((line for line in reversed(text.splitlines()) if re.search(r"passed|failed|error", line)), "")
        took = re.search(r" in ([0-9.]+)s", summary)
        seconds = float(took.group(1)) if took else time.monotonic() - self.started
        # Hypothesis' own count of the cases it ran (--hypothesis-show-statistics), over its phases.
        counts = re.findall(r"(\d+) passing, (\d+) failing", text)
        cases = (
            f"{sum(int(p) for p, _ in counts):,} cases passed, {sum(int(f) for _, f in counts)} failed; "
            if counts
            else ""
        )
        failure = ""
        if code != 0:
            match = re.search(r"^E\s+(AssertionError.*)$", text, re.MULTILINE)
            failure = f"; first failure: {match.group(1)[:300]}" if match else ""
        return code == 0, f"{cases}pytest exit {code}: {summary.strip('= ')}{failure}", seconds


def start(workdir: Path, examples: int = EXAMPLES) -> FuzzRun:
    log = workdir / "fuzz.log"
    env = {**os.environ, "SLUICE_FUZZ_EXAMPLES": str(examples)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", TEST],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    return FuzzRun(proc, log, time.monotonic(), examples)
