"""Every module of the project can be imported first, in a fresh interpreter.

An import cycle hides as long as something else is always imported before the module that
closes it; a worker or a script that starts elsewhere then fails with "cannot import name ...
from partially initialized module". Importing each module alone, first, finds every such cycle.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.layout.project import ROOT, modules

IMPORT_FIRST = """
import importlib, sys
try:
    importlib.import_module(sys.argv[1])
except Exception as error:
    print(f"{sys.argv[1]}: {type(error).__name__}: {error}")
    sys.exit(1)
"""


def _import_alone(name: str) -> str | None:
    """Import `name` first in a new interpreter; the error it gave, or None."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_FIRST, name], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode == 0:
        return None
    return (done.stdout.strip() or done.stderr.strip().splitlines()[-1]) if (done.stdout or done.stderr) else name


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    names = [m.name for m in modules()]
    assert len(names) > 100, "the walk found too few modules: the layout tests look in the wrong place"
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [error for error in pool.map(_import_alone, names) if error]
    assert not failures, f"{len(failures)} of {len(names)} modules cannot be imported first:\n" + "\n".join(failures)
