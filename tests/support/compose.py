"""docker-compose.yml as Compose resolves it (Debian's docker-compose, `config`: variables
interpolated, anchors merged, relative paths made absolute), and a stand-in for a container's
filesystem so a test can run a service's own command on this machine: its bind mounts, tmpfs and
volumes become folders under one root, and absolute paths in its command are moved under that root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from app.cli.demo.stack import require_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def run_compose(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml ARGS` with only `env` (and PATH, HOME) set."""
    binary = require_binary("docker-compose", "docker-compose")
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(env: dict[str, str]) -> dict[str, Any]:
    out = run_compose(["config"], env)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def unescape(value: str) -> str:
    """`config` prints a literal `$` as `$$` (so its output can be used again); a container gets `$`."""
    return value.replace("$$", "$")


class ContainerRoot:
    """A folder standing for a container's `/`: each bind mount is linked at its place, each tmpfs
    and named volume is an empty folder."""

    def __init__(self, base: Path, service: dict[str, Any]) -> None:
        self.base = base
        for mount in service.get("volumes") or []:
            source, target = mount.split(":")[:2]
            place = self.path(target)
            place.parent.mkdir(parents=True, exist_ok=True)
            if source.startswith("/"):
                place.symlink_to(source)
            else:
                place.mkdir()  # a named volume, empty on first start
        for target in service.get("tmpfs") or []:
            self.path(target).mkdir(parents=True)

    def path(self, inside: str) -> Path:
        assert inside.startswith("/"), inside
        return self.base / inside.lstrip("/")

    def replace_link(self, inside: str, text: str) -> Path:
        """Put a file of our own where a bind mount was (e.g. a configuration with local targets)."""
        place = self.path(inside)
        place.unlink()
        place.write_text(text)
        return place

    def replace_dir(self, inside: str) -> Path:
        place = self.path(inside)
        place.unlink()
        place.mkdir()
        return place
