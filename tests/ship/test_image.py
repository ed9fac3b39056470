"""The image users ship: built from the Dockerfile on a plain Debian base (debootstrap), its web
(gunicorn) and worker run from it against a real Redis, HAProxy and Prometheus on 127.0.0.1, and a
release announced to it ends promoted with all traffic on the new version.

Also what an operator checks before shipping: `sluice --version`, the processes run as a non-root
user, no test or lint tools in the image, the HEALTHCHECK answers. The build's times and the
image's size go to test-artifacts/image.json (docs/operations.md, "The image").
"""

from __future__ import annotations

import json
import os
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import requests

from app.cli.demo.run import GOOD, SERVICE, STABLE, DemoStack
from app.cli.demo.stack import free_port, wait_until
from integrations.haproxy.runtime import RuntimeClient
from tests.support import image as img
from tests.support.demo_stack import running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
UID = 10001  # the Dockerfile's USER
DEV_TOOLS = ["pytest", "playwright", "mypy", "scipy", "numpy", "ruff", "hypothesis", "schemathesis"]
MAX_SIZE = 600_000_000  # bytes; the image was 0.47 GB on the Debian base when this was written


@pytest.fixture(scope="module")
def built(artifacts: Path) -> dict:
    base = img.ensure_base()
    seconds = img.build(ROOT, base.ref)
    record = {
        "base": base.ref,
        "base_from": base.source,
        "base_seconds": round(base.seconds, 1),
        "build_seconds": round(seconds, 1),
        "size_bytes": int(img.inspect()),
        "base_size_bytes": int(img.inspect(base.ref)),
    }
    (artifacts / "image.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


@pytest.fixture(scope="module")
def cli(built: dict):
    container = img.Container("sluice-image-cli").create()
    yield container
    container.remove()


def test_image_is_runtime_only_and_non_root(built: dict, cli: img.Container):
    done = cli.run(["sluice", "--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"sluice, version {version('sluice')}", done
    done = cli.run(["python3", "-c", "import os; print(os.getuid(), os.getgid())"])
    assert done.stdout.split()[0] == str(UID), done
    # The probe itself works: it finds what the image must have (gunicorn, gevent, rq, kubernetes).
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    done = cli.run(["python3", "-c", probe, "gunicorn", "gevent", "rq", "kubernetes", *DEV_TOOLS])
    assert done.returncode == 0, done
    assert done.stdout.split() == ["gunicorn", "gevent", "rq", "kubernetes"], done.stdout
    # No source tree or build leftovers: Sluice is imported from the virtualenv.
    done = cli.run(["python3", "-c", "import app, sys; print(app.__file__, sys.prefix)"])
    assert done.stdout.split() == ["/opt/sluice/lib/python3.11/site-packages/app/__init__.py", "/opt/sluice"], done
    assert cli.run(["test", "-e", "/src"]).returncode != 0
    assert img.inspect(fmt="{{.Config.User}}") == str(UID)
    assert "/healthz" in img.inspect(fmt="{{json .HealthCheck}}")
    assert built["size_bytes"] < MAX_SIZE, built


def _swap_in_image(stack: DemoStack, web: img.Container, worker: img.Container) -> None:
    """Replace the stack's Sluice web and worker (run from this checkout) with the image's."""
    for proc in [p for p in stack.processes if p.name in ("sluice-web", "sluice-worker")]:
        proc.stop()
        stack.processes.remove(proc)
    # The image's user reads the configuration and drives HAProxy's admin socket, as an operator
    # would arrange for uid 10001 (the socket is mode 600).
    os.chmod(stack.workdir, 0o755)  # noqa: S103 - read and traversed by uid 10001, written by no one else
    os.chown(stack.haproxy_socket, UID, -1)
    env, mounts = stack.sluice_env(), [stack.workdir]
    port = free_port()
    command = ["sluice", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    proc = web.start("image-web", stack.workdir, command, env, mounts)
    stack.processes.append(proc)
    healthz = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: requests.get(healthz, timeout=1).ok, 60, "the image's web", proc.proc, proc.log)
    stack.api_url = f"http://127.0.0.1:{port}"
    proc = worker.start("image-worker", stack.workdir, ["sluice", "worker"], env, mounts)
    stack.processes.append(proc)
    pid = proc.proc.pid
    running_worker = lambda: any("sluice worker" in img.cmdline(p) for p in img.image_processes(pid))  # noqa: E731
    wait_until(running_worker, 60, "the image's worker", proc.proc, proc.log)


@pytest.fixture(scope="module")
def image_stack(built: dict, tmp_path_factory: pytest.TempPathFactory):
    web, worker = img.Container("sluice-image-web").create(), img.Container("sluice-image-worker").create()
    try:
        stack_run = running(DemoStack(tmp_path_factory.mktemp("image-demo")))
        stack, load = next(stack_run)
        try:
            _swap_in_image(stack, web, worker)
            yield stack, load, web
        finally:
            stack_run.close()  # stops load and every process, the image's among them
    finally:
        web.remove()
        worker.remove()


def test_release_through_the_image_is_promoted(image_stack, cli: img.Container):
    stack, load, web = image_stack
    by_name = {p.name: p for p in stack.processes}
    # Every process the image started (gunicorn's master and workers, the RQ worker) is uid 10001.
    for name in ("image-web", "image-worker"):
        pids = img.image_processes(by_name[name].proc.pid)
        assert pids, name
        assert all(img.uids(p) == {UID} for p in pids), [(img.cmdline(p), img.uids(p)) for p in pids]

    client = stack.client()
    answer = client.deploy(SERVICE, GOOD, application="bluesky")
    assert answer["source_version"] == STABLE
    env = {"SLUICE_URL": stack.api_url, "SLUICE_API_TOKEN": stack.token}
    watch = ["sluice", "watch", answer["release"], "--interval", "0.5", "--timeout", "180"]
    done = cli.run(watch, env=env, timeout=200)
    logs = "".join(p.log.read_text(errors="replace")[-1500:] for p in stack.processes if p.name.startswith("image"))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    release = client.release(answer["release"])
    assert release["state"] == "succeeded", release["reason"]
    weights = [e["data"]["weights"].get(GOOD, 0) for e in release["events"] if e["type"] == "weights_set"]
    assert weights == [10, 50, 100]
    servers = RuntimeClient(stack.haproxy_socket).servers(SERVICE)
    assert servers[GOOD]["weight"] == 100 and servers[STABLE]["weight"] == 0
    promoted_at = time.time()
    time.sleep(1.5)
    after = load.between(promoted_at, time.time())
    assert after and set(after) == {GOOD}, after

    # The image's HEALTHCHECK command, pointed at this web process's port, passes.
    check = json.loads(img.inspect(fmt="{{json .HealthCheck}}"))["Test"]
    assert check[0] == "CMD" and "http://127.0.0.1:8000/healthz" in check[-1]
    port = stack.api_url.rsplit(":", 1)[1]
    done = web.run([*check[1:-1], check[-1].replace(":8000/", f":{port}/")], timeout=30)
    assert done.returncode == 0, done
