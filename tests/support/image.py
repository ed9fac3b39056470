"""The shipped image, built and run as a user would: on a plain Debian base made by debootstrap
(from Debian's own packages, no registry image), built by buildah from the repository's Dockerfile,
and its processes run by `buildah run` on the host network.

`buildah run --isolation chroot`, not `podman run`: this sandbox has no CAP_SYS_RESOURCE, which
podman's runtimes need; chroot isolation needs neither namespaces nor cgroups. The base is cached
(a tarball under ~/.cache and the imported image in containers-storage), keyed by suite, packages
and ISO week, so re-runs skip debootstrap while the base still picks up a week's security fixes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.cli.demo.stack import Process

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_REPO = "localhost/sluice-image-base"
IMAGE = "localhost/sluice-image-test:latest"
# What a package manager leaves behind that an image does not need (apt's downloads and lists).
STRIP = ("var/cache/apt/archives", "var/lib/apt/lists", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin")


def cache_dir() -> Path:
    root = os.environ.get("SLUICE_IMAGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sluice-image-base"
    )
    return Path(root)


def base_key(today: datetime.date | None = None) -> str:
    year, week, _ = (today or datetime.date.today()).isocalendar()
    spec = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(PACKAGES)}".encode()).hexdigest()[:10]
    return f"{SUITE}-{year}w{week:02d}-{spec}"


def _run(args: list[str], timeout: float = 900, **kw) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])}... exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def image_exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], capture_output=True).returncode == 0


def _debootstrap(tarball: Path) -> None:
    """A minimal Debian with Python into `tarball` (written beside it, renamed when complete)."""
    with tempfile.TemporaryDirectory(prefix="sluice-debootstrap-") as tmp:
        root = Path(tmp) / "root"
        include = ",".join(PACKAGES)
        _run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(root), MIRROR], timeout=1800)
        for rel in STRIP:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
            elif target.exists():
                target.unlink()
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)


@dataclass
class Base:
    ref: str
    seconds: float
    source: str  # "storage" (already imported), "tarball" (cache hit) or "debootstrap" (cold)


def ensure_base() -> Base:
    """The Debian base image: imported from the cached tarball, made by debootstrap when there is none."""
    started = time.monotonic()
    key = base_key()
    ref = f"{BASE_REPO}:{key}"
    if image_exists(ref):
        return Base(ref, time.monotonic() - started, "storage")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{key}.tar"
    source = "tarball"
    if not tarball.exists():
        source = "debootstrap"
        _debootstrap(tarball)
        for old in cache.glob("*.tar"):  # earlier weeks' bases: only the current one is used
            if old != tarball:
                old.unlink()
    _run(["podman", "import", str(tarball), ref])
    return Base(ref, time.monotonic() - started, source)


def build(context: Path, base: str, tag: str = IMAGE) -> float:
    """Build the Dockerfile on `base`; seconds taken. Docker format: OCI images have no HEALTHCHECK.

    The machine's CA certificates are mounted into RUN steps so pip reaches the package index where
    TLS goes through an inspecting proxy (they are not in the image: a mount is not a layer)."""
    previous = inspect(tag, "{{.Id}}") if image_exists(tag) else None
    started = time.monotonic()
    _run(
        [
            "buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers=false",
            "--build-arg", f"BASE={base}", "--volume", "/etc/ssl/certs:/etc/ssl/certs:ro",
            "-t", tag, str(context),
        ],
        timeout=1800,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if previous and previous != inspect(tag, "{{.Id}}"):
        # The last run's image, untagged now: without this every run would leave 0.4 GB behind.
        subprocess.run(["podman", "rmi", previous], capture_output=True)
    return seconds


def inspect(tag: str = IMAGE, fmt: str = "{{.Size}}") -> str:
    return _run(["podman", "image", "inspect", "--format", fmt, tag]).stdout.strip()


@dataclass
class Container:
    """A buildah working container of the image; `run`/`start` execute its commands on the host network
    with `mounts` (host paths, mounted at the same path) and `env`."""

    name: str
    tag: str = IMAGE

    def create(self) -> Container:
        subprocess.run(["buildah", "rm", self.name], capture_output=True)  # a leftover of a killed run
        _run(["buildah", "from", "--name", self.name, self.tag])
        return self

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True)

    def argv(self, command: list[str], env: dict[str, str] | None = None, mounts: Sequence[Path] = ()) -> list[str]:
        args = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        for path in mounts:
            args += ["--volume", f"{path}:{path}"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        return [*args, self.name, "--", *command]

    def run(self, command: list[str], env: dict[str, str] | None = None, timeout: float = 120):
        return subprocess.run(self.argv(command, env), capture_output=True, text=True, timeout=timeout)

    def start(
        self, name: str, workdir: Path, command: list[str], env: dict[str, str], mounts: Sequence[Path]
    ) -> Process:
        return Process(name, self.argv(command, env, mounts), workdir).start()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (buildah run -> chroot runtime -> the command and its children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def image_processes(pid: int) -> list[int]:
    """The image's own processes below `pid`: what runs from its virtualenv, not buildah's chroot
    runtime (root, which carries the command line in its arguments until it execs the command)."""
    return [p for p in descendants(pid) if "/opt/sluice/" in (line := cmdline(p)) and not line.startswith("buildah")]


def uids(pid: int) -> set[int]:
    """The real, effective, saved and filesystem user ids of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(u) for u in line.split()[1:]}
    return set()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
