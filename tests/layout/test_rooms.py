"""The folders are the layers, and the rooms stay small.

- No integration imports the application: integrations stand on the core alone.
- The core imports nothing of the project but itself.
- No module over 400 lines, no function over 80: past that a reader can no longer hold it.
- One name for one thing: no class name is defined in two modules.
lint-imports (pyproject.toml) checks the layers between folders; these check what it cannot.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.layout.project import modules

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_integrations_import_only_the_core_of_the_application() -> None:
    upward = [
        f"{m.name} imports {imported}"
        for m in modules()
        if m.name.startswith("integrations")
        for imported in sorted(m.project_imports())
        if imported.startswith("app") and not imported.startswith("app.core")
    ]
    assert not upward, "integrations must stand on app.core alone:\n" + "\n".join(upward)


def test_the_core_imports_nothing_else_of_the_project() -> None:
    outward = [
        f"{m.name} imports {imported}"
        for m in modules()
        if m.name.startswith("app.core")
        for imported in sorted(m.project_imports())
        if not imported.startswith("app.core")
    ]
    assert not outward, "app.core must import only itself:\n" + "\n".join(outward)


def test_no_module_is_over_400_lines() -> None:
    large = [
        f"{m.path.name} ({m.name}): {n} lines"
        for m in modules()
        if (n := len(m.path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not large, "split these modules:\n" + "\n".join(large)


def test_no_function_is_over_80_lines() -> None:
    long = []
    for m in modules():
        for node in ast.walk(m.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{m.name}.{node.name}: {length} lines")
    assert not long, "split these functions:\n" + "\n".join(long)


def test_no_class_name_is_defined_twice() -> None:
    defined: dict[str, list[str]] = defaultdict(list)
    for m in modules():
        for node in m.tree.body:
            if isinstance(node, ast.ClassDef):
                defined[node.name].append(m.name)
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert not twice, "one name for one thing; rename one of each:\n" + "\n".join(f"{n}: {w}" for n, w in twice.items())
