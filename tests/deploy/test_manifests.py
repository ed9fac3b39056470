"""deploy/ rendered by kustomize, every object checked against the Kubernetes API's schemas, and the
parts that run (Redis's command with its password, the readiness and liveness probes, Sluice's
REDIS_URL) run for real with the values a pod would get."""

from __future__ import annotations

import copy
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from app.cli.demo.stack import Process, free_port, port_open, wait_until
from app.store.connection import connect
from tests.support.kubelet import command, container_env
from tests.support.kustomize import copy_with_secrets, find, render
from tests.support.network_policy import Pod, admitted

ROOT = Path(__file__).resolve().parents[2]
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", f"{kubernetes_validate.latest_version()}.0")
PROCESSES = ("web", "worker", "watcher")
SECRETS = {
    "SLUICE_API_TOKEN": secrets.token_hex(16),
    "SLUICE_READ_TOKEN": secrets.token_hex(16),
    "REDIS_PASSWORD": secrets.token_hex(16),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="module")
def objects(workdir: Path) -> list[dict[str, Any]]:
    return render(copy_with_secrets(workdir, SECRETS))


def container(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    [only] = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return only


def test_every_object_is_valid_for_the_kubernetes_api(objects: list[dict[str, Any]]) -> None:
    shown = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert shown == sorted(
        [("Namespace", "sluice"), ("ConfigMap", "sluice-config"), ("ConfigMap", "sluice-env")]
        + [("Secret", "sluice-secrets"), ("Deployment", "sluice-redis"), ("Service", "sluice-redis")]
        + [("Service", "sluice")]
        + [(kind, f"sluice-{p}") for p in PROCESSES for kind in ("ServiceAccount", "ClusterRole", "RoleBinding")]
        + [("Deployment", f"sluice-{p}") for p in PROCESSES]
        + [("NetworkPolicy", n) for n in ("sluice-default-deny-ingress", "sluice-redis", "sluice-web")]
    )
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            # strict: an unknown field (a misspelt `livenessProbe`) is an error, as `kubectl apply` makes it
            kubernetes_validate.validate(obj, version, strict=True)
    # the validator does reject what the API server would
    broken = copy.deepcopy(find(objects, "Deployment", "sluice-worker"))
    probe = broken["spec"]["template"]["spec"]["containers"][0].pop("livenessProbe")
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_images_are_pinned(objects: list[dict[str, Any]]) -> None:
    images = {
        c["image"] for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"ghcr.io/example/sluice:0.1.0", "redis:7.0.15"}  # kustomization.yaml's `images:`


def test_each_process_has_its_own_service_account(objects: list[dict[str, Any]]) -> None:
    for process in PROCESSES:
        pod = find(objects, "Deployment", f"sluice-{process}")["spec"]["template"]["spec"]
        account = find(objects, "ServiceAccount", pod["serviceAccountName"])
        assert account["metadata"]["name"] == f"sluice-{process}"
        assert account["metadata"]["namespace"] == "sluice"
    assert (
        find(objects, "Deployment", "sluice-redis")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    )


def test_the_secret_holds_the_tokens_and_the_configmap_none(objects: list[dict[str, Any]]) -> None:
    assert {"SLUICE_API_TOKEN", "REDIS_PASSWORD"} <= set(find(objects, "Secret", "sluice-secrets")["data"])
    plain = yaml.safe_dump([o for o in objects if o["kind"] != "Secret"])
    for value in SECRETS.values():
        assert value not in plain


@pytest.fixture(scope="module")
def manifest_redis(objects: list[dict[str, Any]], workdir: Path) -> Iterator[tuple[int, dict[str, str], int]]:
    """redis-server started with exactly the container's command and environment (only its data
    directory and listening address moved to this machine). Yields (port, env, pid)."""
    spec = container(objects, "sluice-redis")
    env = container_env(spec, objects)
    argv = command(spec, env)
    data = workdir / "redis-data"
    data.mkdir()
    argv[argv.index("/data")] = str(data)
    port = free_port()
    proc = Process("manifest-redis", [*argv, "--port", str(port), "--bind", "127.0.0.1"], workdir, env=env).start()
    try:
        assert proc.proc is not None
        wait_until(lambda: port_open(port), 15, "redis from deploy/redis.yaml", proc.proc, proc.log)
        yield port, env, proc.proc.pid
    finally:
        proc.stop()


def test_redis_requires_the_secret_password_and_sluice_uses_it(
    objects: list[dict[str, Any]], manifest_redis: tuple[int, dict[str, str], int]
) -> None:
    port, redis_env, pid = manifest_redis
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port).ping()  # no password: refused
    # The password is not on redis-server's command line (visible to anyone listing processes);
    # the shell exec'd it, so the container's process is redis-server itself.
    cmdline = Path(f"/proc/{pid}/cmdline").read_text()
    assert cmdline.startswith("redis-server") and SECRETS["REDIS_PASSWORD"] not in cmdline

    readiness = container(objects, "sluice-redis")["readinessProbe"]["exec"]["command"]
    probe_env = {**os.environ, **redis_env}
    probe = [*readiness[:2], readiness[2].replace("redis-cli", f"redis-cli -p {port}")]
    assert subprocess.run(probe, env=probe_env, timeout=10).returncode == 0
    wrong = {**probe_env, "REDISCLI_AUTH": "not-the-password"}
    assert subprocess.run(probe, env=wrong, timeout=10, capture_output=True).returncode != 0

    config_address = find(objects, "ConfigMap", "sluice-env")["data"]["REDIS_ADDRESS"]
    for process in PROCESSES:
        env = container_env(container(objects, f"sluice-{process}"), objects)
        assert env["REDIS_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@{config_address}"
        local = env["REDIS_URL"].replace(config_address, f"127.0.0.1:{port}/0")
        client = connect(local)  # Sluice's own way to its Redis (app/store/connection.py)
        assert client.ping() is True
        client.close()


def test_network_policies_let_only_sluice_reach_redis(objects: list[dict[str, Any]]) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]

    def pod(component: str, namespace: str = "sluice") -> Pod:
        return Pod(namespace, {"app.kubernetes.io/name": "sluice", "app.kubernetes.io/component": component})

    redis_pod, web = pod("redis"), pod("web")
    for process in PROCESSES:
        assert admitted(policies, pod(process), redis_pod, 6379)
        assert not admitted(policies, pod(process), redis_pod, 6380)
    assert not admitted(policies, pod("debug"), redis_pod, 6379)  # another pod of the namespace
    assert not admitted(policies, pod("worker", "default"), redis_pod, 6379)  # same labels, other namespace
    outsider = Pod("ingress-nginx", {"app": "ingress-nginx"})
    assert admitted(policies, outsider, web, 8000)
    assert not admitted(policies, outsider, web, 9090)
    assert not admitted(policies, outsider, pod("worker"), 8000)  # the worker and watcher serve nothing
    assert not admitted(policies, web, pod("watcher"), 8000)
    # the port the policy opens is the one the web listens on
    [http] = container(objects, "sluice-web")["ports"]
    assert http["containerPort"] == 8000


def _probe(objects: list[dict[str, Any]], process: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The container's liveness probe command, run with this interpreter as the image's `python`."""
    argv = container(objects, f"sluice-{process}")["livenessProbe"]["exec"]["command"]
    assert argv[0] == "python"
    return subprocess.run([sys.executable, *argv[1:]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("process", ["worker", "watcher"])
def test_liveness_probe_follows_the_process_loop(
    process: str, objects: list[dict[str, Any]], manifest_redis: tuple[int, dict[str, str], int], workdir: Path
) -> None:
    """`sluice worker` / `sluice watcher` with the container's environment (the ConfigMap's
    configuration, REDIS_URL with the Secret's password) against the manifest's Redis: the probe
    passes while it runs, and fails once the heartbeat is older than the probe's limit."""
    port = manifest_redis[0]
    spec = container(objects, f"sluice-{process}")
    env = container_env(spec, objects)
    config = workdir / f"{process}-sluice.yaml"
    config.write_text(find(objects, "ConfigMap", "sluice-config")["data"]["sluice.yaml"])
    alive_dir = workdir / f"alive-{process}"
    alive_dir.mkdir()
    env.update(
        SLUICE_CONFIG=str(config),
        REDIS_URL=env["REDIS_URL"].replace(env["REDIS_ADDRESS"], f"127.0.0.1:{port}/0"),
        SLUICE_LIVENESS_DIR=str(alive_dir),
        PYTHONPATH=str(ROOT),
    )
    probe_env = {**os.environ, **env}
    assert _probe(objects, process, probe_env).returncode == 1  # nothing beat yet
    assert command(spec, env)[0] == "sluice"
    proc = Process(process, [sys.executable, "-m", "app.cli.main", *command(spec, env)[1:]], workdir, env=env).start()
    heartbeat = alive_dir / f"sluice-alive-{process}"
    try:
        assert proc.proc is not None
        wait_until(heartbeat.exists, 30, process, proc.proc, proc.log)
        result = _probe(objects, process, probe_env)
        assert result.returncode == 0, result.stderr
        if process == "watcher":  # beats every leader-lease round (3.75 s)
            first = heartbeat.stat().st_mtime
            wait_until(lambda: heartbeat.stat().st_mtime > first, 15, process, proc.proc, proc.log)
    finally:
        proc.kill()
    limit = float(container(objects, f"sluice-{process}")["livenessProbe"]["exec"]["command"][-1])
    stale = time.time() - limit - 5
    os.utime(heartbeat, (stale, stale))
    result = _probe(objects, process, probe_env)
    assert result.returncode == 1 and re.search(r"last heartbeat \d+ s ago", result.stderr), result.stderr
