"""The CircleCI orb and the example config, checked without the CircleCI CLI (not installable here):
structure, parameter types, that every command / job / executor referenced exists, and the
`notify` and `wait` steps' shell scripts run for real (bash + curl) against Sluice served on
127.0.0.1, including `wait` without python3 (the grep/sed fallback)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.serving import make_server

from app.context import Context
from app.web import create_app
from tests.support.ci import INTAKE_TOKEN, READ_TOKEN, SLUG, get
from workers.tick import tick

pytestmark = pytest.mark.integration
CIRCLECI = Path(__file__).resolve().parents[3] / "integrations" / "circleci"
ORB = yaml.safe_load((CIRCLECI / "orb" / "orb.yml").read_text())
EXAMPLE = yaml.safe_load((CIRCLECI / "example-config.yml").read_text())
BUILTIN_STEPS = {
    "run", "checkout", "when", "unless", "setup_remote_docker", "save_cache", "restore_cache",
    "persist_to_workspace", "attach_workspace", "store_artifacts", "store_test_results", "add_ssh_keys",
}  # fmt: skip
PARAM_TYPES = {"string", "boolean", "integer", "enum", "env_var_name", "steps", "executor"}
PARAM_RE = re.compile(r"<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>")


def _walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _walk_strings(k)
            yield from _walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_strings(v)


def _step_names(steps: list[Any]) -> Iterator[str]:
    for step in steps:
        name = step if isinstance(step, str) else next(iter(step))
        yield name
        if name in ("when", "unless"):
            yield from _step_names(step[name]["steps"])


def _check_parameters(where: str, params: dict[str, Any]) -> None:
    for name, spec in params.items():
        assert spec.get("type") in PARAM_TYPES, f"{where}.{name}: type {spec.get('type')!r}"
        assert spec.get("description"), f"{where}.{name}: describe every parameter"
        if "default" not in spec:
            continue
        default, kind = spec["default"], spec["type"]
        ok = {
            "string": isinstance(default, str),
            "boolean": isinstance(default, bool),
            "integer": isinstance(default, int) and not isinstance(default, bool),
            "enum": default in spec.get("enum", []),
            "env_var_name": isinstance(default, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", default),
            "executor": isinstance(default, str) and default in ORB["executors"],
            "steps": isinstance(default, list),
        }[kind]
        assert ok, f"{where}.{name}: default {default!r} is not a valid {kind}"


def test_orb_structure() -> None:
    assert ORB["version"] == 2.1
    assert set(ORB) <= {"version", "description", "display", "orbs", "commands", "jobs", "executors", "examples"}
    assert {"notify", "wait"} <= set(ORB["commands"]) and "release" in ORB["jobs"]
    assert {"default", "python"} <= set(ORB["executors"])
    for kind in ("commands", "jobs", "executors"):
        for name, element in ORB[kind].items():
            where = f"{kind}.{name}"
            params = element.get("parameters", {})
            _check_parameters(where, params)
            used = set(
                PARAM_RE.findall("\n".join(_walk_strings({k: v for k, v in element.items() if k != "parameters"})))
            )
            assert used <= set(params), f"{where} uses undeclared parameters {used - set(params)}"
            if kind == "executors":
                assert "docker" in element or "machine" in element
                continue
            for step in _step_names(element["steps"]):
                assert step in BUILTIN_STEPS or step in ORB["commands"], f"{where}: unknown step {step!r}"
    job = ORB["jobs"]["release"]
    assert job["executor"] == "<< parameters.executor >>"
    assert job["parameters"]["executor"]["default"] in ORB["executors"]
    for name, example in ORB["examples"].items():
        assert example["description"] and example["usage"]["version"] == 2.1, name
        _check_uses_of_orb(example["usage"], f"examples.{name}")


def _check_uses_of_orb(config: dict[str, Any], where: str) -> None:
    alias = next(a for a, ref in config["orbs"].items() if ref.startswith("sluice/sluice@"))
    text = "\n".join(_walk_strings({k: v for k, v in config.items() if k != "orbs"}))
    for name in re.findall(rf"\b{alias}/([a-z_-]+)", text):
        assert name in ORB["commands"] or name in ORB["jobs"] or name in ORB["executors"], f"{where}: {alias}/{name}"
    jobs = config.get("jobs", {})
    for wf_name, wf in config["workflows"].items():
        for entry in wf["jobs"]:
            name, spec = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            known = name in jobs or name.removeprefix(f"{alias}/") in ORB["jobs"] or spec.get("type") == "approval"
            assert known, f"{where}: workflow {wf_name} runs unknown job {name}"
            for req in spec.get("requires", []):
                names = [e if isinstance(e, str) else next(iter(e)) for e in wf["jobs"]]
                assert req in names, f"{where}: {name} requires {req}, not in workflow {wf_name}"
    for name, job in jobs.items():
        for step in _step_names(job["steps"]):
            assert step in BUILTIN_STEPS or step.removeprefix(f"{alias}/") in ORB["commands"], (
                f"{where}: {name}: {step}"
            )


def test_example_config_matches_the_talks_flow() -> None:
    _check_uses_of_orb(EXAMPLE, "example-config.yml")
    assert EXAMPLE["version"] == 2.1
    params = EXAMPLE["parameters"]
    # What docs/ci.md's circleci_trigger_pipeline hooks send: cleanup + version, both declared.
    assert params["cleanup"]["type"] == "boolean" and params["cleanup"]["default"] is False
    assert params["version"]["type"] == "string"
    text = (CIRCLECI / "example-config.yml").read_text()
    assert set(re.findall(r"pipeline\.parameters\.([a-z_]+)", text)) <= set(params)
    release, cleanup = EXAMPLE["workflows"]["release"], EXAMPLE["workflows"]["cleanup"]
    assert release["when"] == {"not": "<< pipeline.parameters.cleanup >>"}
    assert cleanup["when"] == "<< pipeline.parameters.cleanup >>"
    jobs = {next(iter(e)) if isinstance(e, dict) else e: e for e in release["jobs"]}
    assert jobs["released-by-sluice"]["released-by-sluice"] == {"type": "approval", "requires": ["deploy"]}
    deploy_steps = list(_step_names(EXAMPLE["jobs"]["deploy"]["steps"]))
    assert deploy_steps[-1] == "sluice/notify"


# --- the scripts, for real ----------------------------------------------------------------------------


@pytest.fixture
def sluice_url(ctx: Context) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _script(command: str, args: dict[str, Any], pipeline: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The step's shell script and environment, with << parameters.x >> / << pipeline.x >> filled in
    as CircleCI does when it compiles the config."""
    run = ORB["commands"][command]["steps"][0]["run"]
    params = {k: v.get("default") for k, v in ORB["commands"][command]["parameters"].items()} | args

    def fill(text: str) -> str:
        text = PARAM_RE.sub(lambda m: str(params[m.group(1)]), text)
        return re.sub(r"<<\s*pipeline\.([a-z_.]+)\s*>>", lambda m: str(pipeline[m.group(1)]), text)

    assert not re.search(r"<<", run["command"]), "parameters go through `environment`, not into the script"
    return fill(run["command"]), {k: fill(str(v)) for k, v in run["environment"].items()}


def _bash(script: str, env: dict[str, str], path: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {"PATH": path or os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], env=full, capture_output=True, text=True, timeout=60
    )


def _notify(sluice_url: str, tmp_path: Path, version: str, job_name: str = 'deploy "blue" \\ green') -> tuple:
    pipeline = {"id": "5034460f-c7c4-4c43-9457-de07e2029e7b", "number": 371, "project.slug": SLUG}
    script, env = _script(
        "notify", {"service": "api", "version": version, "release_file": str(tmp_path / "release")}, pipeline
    )
    circle_env = {
        "SLUICE_URL": sluice_url,
        "SLUICE_INTAKE_TOKEN": INTAKE_TOKEN,  # the orb's default: announce only
        "CIRCLE_WORKFLOW_ID": "2f1a3c4d-1111-2222-3333-444455556666",
        "CIRCLE_BUILD_NUM": "1234",
        "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/shop/1234",
        "CIRCLE_JOB": job_name,
        "CIRCLE_PIPELINE_ID": pipeline["id"],
    }
    return _bash(script, env | circle_env), pipeline, circle_env


def test_notify_step_announces_the_deploy_with_ci_ids(ctx: Context, sluice_url: str, tmp_path: Path) -> None:
    proc, pipeline, circle_env = _notify(sluice_url, tmp_path, "2.0.371")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rid = (tmp_path / "release").read_text().strip()
    rel = get(ctx, rid)
    assert (rel.service, rel.target_version, rel.trigger) == ("api", "2.0.371", "circleci")
    assert rel.ci.model_dump() == {
        "provider": "circleci",
        "project_slug": SLUG,
        "workflow_id": circle_env["CIRCLE_WORKFLOW_ID"],
        "pipeline_id": pipeline["id"],
        "pipeline_number": 371,
        "job_number": 1234,
        "job_name": 'deploy "blue" \\ green',  # quotes and backslashes survive the shell's JSON
        "build_url": circle_env["CIRCLE_BUILD_URL"],
    }
    # Announced again (a re-run): 200, the same release; the step still succeeds.
    again, _, _ = _notify(sluice_url, tmp_path, "2.0.371")
    assert again.returncode == 0 and (tmp_path / "release").read_text().strip() == rid


def test_notify_step_fails_the_job_when_sluice_refuses(ctx: Context, sluice_url: str, tmp_path: Path) -> None:
    proc, _, _ = _notify(sluice_url, tmp_path, "not a version!")
    assert proc.returncode == 1 and "HTTP 400" in proc.stdout
    script, env = _script(
        "notify", {"service": "api", "version": "2.0.1"}, {"id": "x", "number": 1, "project.slug": SLUG}
    )
    missing = _bash(script, env)
    assert missing.returncode == 2 and "set $SLUICE_URL" in missing.stdout


def _drive(ctx: Context, rid: str) -> None:
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not get(ctx, rid).terminal:
        tick(ctx, rid, get(ctx, rid).seq)
        time.sleep(0.05)


@pytest.mark.parametrize("with_python", [True, False])
def test_wait_step_follows_the_release_to_its_end(
    ctx: Context, sluice_url: str, tmp_path: Path, prom: Any, with_python: bool
) -> None:
    path = None
    if not with_python:  # a PATH with only what cimg/base surely has: no python3
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("bash", "curl", "sed", "grep", "tr", "head", "cat", "date", "sleep", "mktemp", "chmod", "rm"):
            found = shutil.which(tool)
            assert found, tool
            (bin_dir / tool).symlink_to(found)
        path = str(bin_dir)
    results = {}
    for version, errors, expected in (("2.0.371", 0, 0), ("2.0.372", 800, 1)):  # 0% / 40% 500s
        prom.serve(version, 2000, errors=errors)
        assert _notify(sluice_url, tmp_path, version)[0].returncode == 0
        rid = (tmp_path / "release").read_text().strip()
        script, env = _script("wait", {"release_file": str(tmp_path / "release"), "interval": 1, "timeout": 30}, {})
        driver = threading.Thread(target=_drive, args=(ctx, rid))
        driver.start()
        proc = _bash(script, env | {"SLUICE_URL": sluice_url, "SLUICE_READ_TOKEN": READ_TOKEN}, path)
        driver.join()
        results[version] = (proc.returncode, get(ctx, rid).state)
        assert proc.returncode == expected, proc.stdout + proc.stderr
        assert f"release {rid}: {get(ctx, rid).state}" in proc.stdout
    assert results == {"2.0.371": (0, "succeeded"), "2.0.372": (1, "failed")}


def test_wait_step_fails_fast_when_waiting_cannot_help(ctx: Context, sluice_url: str, tmp_path: Path) -> None:
    release_file = tmp_path / "release"
    release_file.write_text("r-20260101000000-deadbeef\n")
    script, env = _script("wait", {"release_file": str(release_file), "interval": 1, "timeout": 20}, {})
    started = time.monotonic()
    unknown = _bash(script, env | {"SLUICE_URL": sluice_url, "SLUICE_READ_TOKEN": READ_TOKEN})
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stdout, unknown.stdout
    no_url = _bash(script, env | {"SLUICE_READ_TOKEN": READ_TOKEN})
    assert no_url.returncode == 2 and "set $SLUICE_URL" in no_url.stdout, no_url.stdout
    assert time.monotonic() - started < 10  # not after the 20 s timeout
