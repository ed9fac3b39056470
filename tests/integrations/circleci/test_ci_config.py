"""Configuration of the CI / on-call integrations: docs/ci.md's snippets are valid, references
resolve, and hook templates can only use fields a release has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.config_file.loader import ConfigError, parse_config
from app.core.models import Release
from app.release.hooks import release_fields
from integrations.notify.interface import hook_fields

CI_DOC = Path(__file__).resolve().parents[3] / "docs" / "ci.md"
APPS = """
applications:
  - name: bluesky
    router: {type: haproxy, socket: 127.0.0.1:9999}
    services:
      - {name: blueskygreenbuilds, policy: canary}
      - {name: checkout, policy: canary}
policies:
  - name: canary
    steps: [{weight: 10, duration: 1m}, {weight: 100}]
"""


def test_hook_fields_are_the_release_fields() -> None:
    release = Release(
        id="r-1", application="a", namespace="n", service="s", source_version="1", target_version="2",
        policy="p", created_at=0, updated_at=0,
    )  # fmt: skip
    assert sorted(hook_fields()) == sorted(release_fields(release))


def test_ci_doc_circleci_and_argo_snippets_are_valid() -> None:
    section = CI_DOC.read_text()
    texts = re.findall(r"```yaml\n(.*?)```", section, re.S)
    blocks = [yaml.safe_load(b) for b in texts]
    sluice = [t for t, b in zip(texts, blocks, strict=True) if "circleci" in b or "argo" in b]
    assert len(sluice) == 2
    config = parse_config(APPS + "".join(sluice))  # Sluice's own loader: `on:` is a key, not YAML 1.1's True
    assert [h.type for h in config.hooks] == [
        "circleci_approve", "circleci_trigger_pipeline", "circleci_trigger_pipeline", "slack", "pagerduty",
    ]  # fmt: skip
    deploy = config.circleci.deploy_for("gh/eddiewebb/demo-blueskygreenbuilds", "deploy", None)
    assert deploy is not None and deploy.service == "blueskygreenbuilds"
    circleci_yaml = next(b for b in blocks if b.get("version") == 2.1)
    assert set(circleci_yaml["parameters"]) == {"cleanup", "version"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("circleci:\n  projects:\n    - {slug: gh/a/b, deploys: [{job: deploy, service: nope, version: '1'}]}\n",
         "deploys service 'nope', which is not in `applications`"),
        ("circleci:\n  projects:\n    - {slug: gh/a/b, deploys: [{service: checkout, version: '1'}]}\n",
         "exactly one of `job`"),
        ("circleci:\n  projects:\n    - {slug: gh/a/b, deploys: "
         "[{job: d, service: checkout, version: '{job.secret}'}]}\n", "unknown field(s) {job.secret}"),
        ("argo:\n  applications: [{name: web, service: nope}]\n", "argo application 'web' deploys service 'nope'"),
        ("hooks:\n  - {name: s, type: slack, url_env: lowercase}\n", "NAME of an environment variable"),
        ("hooks:\n  - {name: t, type: circleci_trigger_pipeline, on: [failed], branch: a, tag: b}\n", "not both"),
        ("hooks:\n  - {name: t, type: circleci_trigger_pipeline, on: [failed], definition_id: "
         "2a7e9f0c-5f6a-4b1e-9e44-0c6f0a1b2c3d}\n", "needs `branch` or `tag`"),
        ("hooks:\n  - {name: p, type: pagerduty, severity: loud}\n", "severity"),
    ],
)  # fmt: skip
def test_invalid_integration_config_is_explained(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(APPS + extra)
    assert message in str(info.value)
