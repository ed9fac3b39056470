"""Configuration: what a platform engineer sees when the file is right, and when it is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.config_file.loader import ConfigError, parse_config
from tests.support.configs import GOOD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sluice.yaml"


def test_good_config_parses_durations_and_policies():
    cfg = parse_config(GOOD)
    canary = cfg.policy("canary")
    assert canary.interval == 5.0 and canary.steps[0].duration == 30.0
    assert canary.checks[0].under == 0.5
    assert cfg.policy("careful").steps[0].duration == 120.0


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sluice.yaml")
    return [f"{where}: {msg}" for where, msg in info.value.problems]


def test_unknown_key_is_an_error_with_line_and_hint():
    text = GOOD.replace("    interval: 5s", "    interval: 5s\n    intervall: 10s")
    [p] = problems(text)
    assert "line 12" in p and "policies.0.intervall" in p and "remove this key" in p


def test_last_step_must_reach_100():
    [p] = problems(GOOD.replace("      - {weight: 100}\n", "      - {weight: 50}\n"))
    assert "must reach 100" in p and "policies.0" in p


def test_bad_duration_weight_and_undefined_policy_are_all_reported():
    text = GOOD.replace("interval: 5s", "interval: soon").replace("weight: 10,", "weight: 140,")
    text = text.replace("minor: canary", "minor: fast")
    found = problems(text)
    assert any("interval" in p and "'30s'" in p for p in found)
    assert any("weight" in p and "100" in p for p in found)
    text2 = GOOD.replace("minor: canary", "minor: fast")
    assert any("policy 'fast'" in p and "not defined" in p for p in problems(text2))


def test_invalid_yaml_names_line():
    [p] = problems("applications: [\n  - name: x\n")
    assert "line" in p and "YAML" in p


def test_unknown_template_variable_is_rejected():
    text = GOOD + "metrics:\n  p95:\n    query: 'histogram_quantile(0.95, rate(x{app=\"{svc}\"}[{window}]))'\n"
    assert any("{svc}" in p for p in problems(text))


def test_cli_validate_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("interval: 5s", "interval: 5 parsecs"))
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(good)])
    assert ok.exit_code == 0 and "ok" in ok.output
    res = runner.invoke(main, ["validate", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}: line" in res.output and "interval" in res.output


def test_schema_is_published_and_forbids_unknown_keys():
    res = CliRunner().invoke(main, ["schema"])
    schema = json.loads(res.output)
    assert schema["additionalProperties"] is False
    assert "PolicyConfig" in schema["$defs"]


def test_shipped_example_is_valid():
    res = CliRunner().invoke(main, ["validate", str(EXAMPLE)])
    assert res.exit_code == 0, res.output


def test_an_evidence_floor_at_or_under_the_margin_is_refused_with_the_reason():
    text = GOOD.replace("    interval: 5s", "    interval: 5s\n    judge: {errors: {margin: 0.05, detectable: 0.02}}")
    [p] = problems(text)
    assert "detectable (0.02) must be larger than margin (0.05)" in p and "policies.0.judge.errors" in p
