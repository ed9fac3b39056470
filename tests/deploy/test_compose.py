"""docker-compose.yml: valid for Compose, every image pinned and every process health-checked, Redis
refusing clients without the password, and its Prometheus configuration scraping Sluice (with the
read token) and the released services, run by a real Prometheus with its targets moved to local
servers."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from app.cli.demo.stack import Process, free_port, port_open, require_binary, start_gunicorn, wait_until
from app.store.connection import connect
from tests.support.compose import ROOT, ContainerRoot, resolved, run_compose, unescape
from tests.support.configs import GOOD

ENV = {
    "SLUICE_API_TOKEN": secrets.token_hex(16),
    "SLUICE_READ_TOKEN": secrets.token_hex(16),
    "REDIS_PASSWORD": secrets.token_hex(16),
}
SLUICE_SERVICES = ("web", "worker", "watcher")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return resolved(ENV)["services"]


def test_compose_accepts_the_file_and_refuses_missing_secrets() -> None:
    ok = run_compose(["config", "-q"], ENV)
    assert ok.returncode == 0, ok.stderr
    for name in ENV:
        missing = run_compose(["config", "-q"], {k: v for k, v in ENV.items() if k != name})
        assert missing.returncode != 0 and f"set {name}" in missing.stderr, missing.stderr


def test_every_image_is_pinned_and_every_process_health_checked(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "prometheus", *SLUICE_SERVICES}
    for name, service in services.items():
        assert re.fullmatch(r"[a-z0-9./-]+:v?\d+\.\d+\.\d+", service["image"]), f"{name}: {service['image']}"
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in SLUICE_SERVICES:
        service = services[name]
        assert service["image"] == f"sluice:{VERSION}" and service["build"]["context"] == str(ROOT)
        assert service["environment"]["REDIS_URL"] == f"redis://:{ENV['REDIS_PASSWORD']}@redis:6379/0"
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
    for name in ("worker", "watcher"):
        assert services[name]["healthcheck"]["test"][1:6] == ["python", "-m", "workers.liveness", "check", name]


@pytest.fixture(scope="module")
def compose_redis(services: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """redis-server run with the `redis` service's own command and environment, on a local port."""
    service = services["redis"]
    workdir = tmp_path_factory.mktemp("compose-redis")
    port = free_port()
    argv = [unescape(a) for a in service["command"]]
    extra = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    proc = Process("compose-redis", [*argv, *extra], workdir, env=service["environment"]).start()
    try:
        assert proc.proc is not None
        wait_until(lambda: port_open(port), 15, "redis from docker-compose.yml", proc.proc, proc.log)
        yield port
    finally:
        proc.stop()


def test_redis_requires_the_password_that_sluice_is_given(services: dict[str, Any], compose_redis: int) -> None:
    port = compose_redis
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port).ping()
    kind, script = services["redis"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    check = ["sh", "-c", script.replace("redis-cli", f"redis-cli -p {port}")]
    env = {**os.environ, **services["redis"]["environment"]}
    assert subprocess.run(check, env=env, timeout=10).returncode == 0
    assert subprocess.run(check, env={**env, "REDISCLI_AUTH": "wrong"}, timeout=10, capture_output=True).returncode
    url = services["web"]["environment"]["REDIS_URL"].replace("@redis:6379", f"@127.0.0.1:{port}")
    client = connect(url)
    assert client.ping() is True
    client.close()


@pytest.fixture
def scraped_servers(redis_url: str, tmp_path: Path) -> Iterator[dict[str, int]]:
    """Sluice's web (real, with a read token) and one version of a service exporting request metrics."""
    config = tmp_path / "sluice.yaml"
    config.write_text(GOOD)
    env = {"SLUICE_CONFIG": str(config), "REDIS_URL": redis_url, **{k: ENV[k] for k in ENV if k.startswith("SLUICE")}}
    web, web_port = start_gunicorn(tmp_path, "sluice-web", "app:create_app()", env=env)
    service_env = {"DEMO_SERVICE": "checkout", "DEMO_VERSION": "1.4.0", "DEMO_LATENCY_MS": "0"}
    service, service_port = start_gunicorn(tmp_path, "checkout", "app.cli.demo.service:create_app()", env=service_env)
    try:
        for _ in range(5):
            requests.get(f"http://127.0.0.1:{service_port}/", timeout=5)
        yield {"web": web_port, "checkout": service_port}
    finally:
        service.stop()
        web.stop()


def _local_config(text: str, root: ContainerRoot, ports: dict[str, int]) -> str:
    """The compose Prometheus configuration with container paths under `root`, a 1 s scrape interval
    and its targets on this machine."""
    config = yaml.safe_load(text)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(root.path(p)) for p in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sluice = jobs["sluice"]
    sluice["authorization"]["credentials_file"] = str(root.path(sluice["authorization"]["credentials_file"]))
    assert sluice["static_configs"] == [{"targets": ["web:8000"]}]
    sluice["static_configs"] = [{"targets": [f"127.0.0.1:{ports['web']}"]}]
    [sd] = jobs["services"]["file_sd_configs"]
    sd["files"] = [str(root.path(f)) for f in sd["files"]]
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['prometheus']}"]}]
    return yaml.safe_dump(config)


def test_prometheus_scrapes_sluice_with_the_read_token_and_the_services(
    services: dict[str, Any], scraped_servers: dict[str, int], tmp_path: Path
) -> None:
    service = services["prometheus"]
    root = ContainerRoot(tmp_path / "prometheus-root", service)
    ports = {**scraped_servers, "prometheus": free_port()}
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    root.replace_link(config_path, _local_config(root.path(config_path).read_text(), root, ports))
    # the services' target files: the example, for the local service
    example = yaml.safe_load((ROOT / "deploy/compose/targets/services.yml.example").read_text())
    example[0]["targets"] = [f"127.0.0.1:{ports['checkout']}"]
    (root.replace_dir("/etc/prometheus/targets") / "checkout.yml").write_text(yaml.safe_dump(example))

    # the service's own entrypoint (writes the token file, then execs Prometheus), paths moved under root
    shell, flag, script, arg0 = (unescape(a) for a in service["entrypoint"])
    script = script.replace("/run/sluice/", f"{root.path('/run/sluice')}/")
    script = script.replace("/bin/prometheus", require_binary("prometheus", "prometheus"))
    flags = [f"{a.split('=', 1)[0]}={root.path(a.split('=', 1)[1])}" for a in service["command"]]
    flags += [f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--log.level=warn"]
    env = {"PATH": os.environ["PATH"], **service["environment"]}
    prometheus = Process("compose-prometheus", ["sh", flag, script, arg0, *flags], tmp_path, env=env).start()
    url = f"http://127.0.0.1:{ports['prometheus']}"
    try:
        assert prometheus.proc is not None
        ready = lambda: requests.get(f"{url}/-/ready", timeout=1).ok  # noqa: E731
        wait_until(ready, 30, "prometheus", prometheus.proc, prometheus.log)
        checked = subprocess.run(
            [require_binary("promtool", "prometheus"), "check", "config", str(root.path(config_path))],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0 and "WARNING" not in checked.stdout + checked.stderr, checked.stdout
        seen: list[object] = []
        try:
            wait_until(lambda: _all_up(url, seen), 30, "every target up", prometheus.proc, prometheus.log)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\nlast seen: {seen[-1:]}")
    finally:
        prometheus.stop()
    # Sluice's /metrics is closed without the token, so "up" means the token file was sent
    assert requests.get(f"http://127.0.0.1:{ports['web']}/metrics", timeout=5).status_code == 401


def _all_up(url: str, seen: list[object]) -> bool:
    targets = requests.get(f"{url}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    seen.append({t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets})
    if health != {"sluice": "up", "services": "up", "prometheus": "up"}:
        return False
    # the checks' evidence is there, with the labels Sluice's queries select on
    query = 'http_requests_total{job="services",app="checkout",version="1.4.0"}'
    series = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()["data"]["result"]
    rules = requests.get(f"{url}/api/v1/rules", timeout=2).json()["data"]["groups"]
    return bool(series) and any(r["name"] == "SluiceDown" for g in rules for r in g["rules"])
