"""Every module of the project can be imported first, in a fresh interpreter.

An import cycle hides as long as something else is always imported before the module that
closes it; a worker or a script that starts elsewhere then fails with "cannot import name ...
from partially initialized module". Importing each module alone, first, finds every such cycle.

An interpreter per module spent most of its second re-importing the same libraries (Flask,
pydantic, the kubernetes client): 260 s of CPU in `make test`. Cycles are among the project's
own modules, so one interpreter loads the libraries the project uses (and none of the project),
then forks a child per module that imports it first: each child's project is as fresh as a new
interpreter's. A library's import that pulled in a project module would break that; the parent
checks it did not.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.layout.project import PACKAGES, ROOT, modules

# Imports every project module in one interpreter and prints the libraries that took them in.
LIBRARIES = """
import importlib, json, sys
tops = set(sys.argv[1].split(","))
for name in json.loads(sys.stdin.read()):
    try:
        importlib.import_module(name)
    except Exception:
        pass  # reported by the fork below, where the module is imported first
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] not in tops and m != "__main__")))
"""

# Loads the libraries (no project module), then imports each project module first in a forked child.
IMPORT_FIRST = """
import importlib, json, os, sys
tops = set(sys.argv[1].split(","))
names, libraries = json.loads(sys.stdin.read())
for library in libraries:
    try:
        importlib.import_module(library)
    except Exception:
        pass  # a library's optional part: the child imports what it needs itself
leaked = sorted(m for m in sys.modules if m.split(".")[0] in tops)
if leaked:
    print(json.dumps({"_": "loading the libraries imported project modules: " + ", ".join(leaked)}))
    sys.exit(0)
failures = {}
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException as error:
            os.write(write, f"{type(error).__name__}: {error}".encode()[:4000])
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failures[name] = said or f"exit status {status}"
print(json.dumps(failures))
"""


def _run(script: str, payload: object) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, ",".join(PACKAGES)],
        cwd=ROOT, input=json.dumps(payload), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    names = [m.name for m in modules()]
    assert len(names) > 100, "the walk found too few modules: the layout tests look in the wrong place"
    libraries = json.loads(_run(LIBRARIES, names))
    assert any(lib.startswith("flask") for lib in libraries), "the libraries' walk found no Flask"
    failures = json.loads(_run(IMPORT_FIRST, [names, libraries]))
    assert not failures, f"{len(failures)} of {len(names)} modules cannot be imported first:\n" + "\n".join(
        f"{name}: {error}" for name, error in failures.items()
    )
