"""promql.render is the only door from user-supplied values into PromQL: test that it holds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.config.policy import CheckConfig
from integrations.prometheus import queries
from integrations.prometheus.config import PrometheusConfig
from integrations.prometheus.promql import escape_string, render, template_placeholders, window

ALL = {
    "service": "shop",
    "version": "1.0.371",
    "stable_version": "1.0.370",
    "namespace": "default",
    "window": "30s",
}
# One double-quoted PromQL string: no raw quote, backslash or newline except as escapes.
ONE_MATCHER = re.compile(r'^m\{v="((?:[^"\\\n]|\\.)*)"\}$')


@pytest.mark.parametrize(
    "bad",
    [
        '1.0.371"} or vector(1) #',
        '1.0.371"}',
        "1.0.371\nor vector(1)",
        "1.0.371\\",
        "1.0.3\\71",
        "1.0.371é",
        "версия",
        "1.0 .371",
        "",
        "-1.0",
        "a" * 64,
    ],
)
def test_injection_and_invalid_values_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        render('m{v="{version}"}', {**ALL, "version": bad})


@pytest.mark.parametrize("bad", ["1.0.371\n", "shop\n"])
def test_trailing_newline_is_rejected(bad: str) -> None:
    """`$` in a Python regex also matches before a final newline; the validation must not be fooled."""
    with pytest.raises(ValueError):
        render('m{v="{version}"}', {**ALL, "version": bad})


def test_placeholders_replaced_matchers_untouched() -> None:
    template = 'sum(rate(m{app="x",svc="{service}",v="{version}"}[{window}])) / count(m{n="{namespace}"})'
    out = render(template, ALL)
    assert out == ('sum(rate(m{app="x",svc="shop",v="1.0.371"}[30s])) / count(m{n="default"})')


def test_non_variable_braces_are_left_alone() -> None:
    template = 'label_replace(m{a="{b}"}, "x", "$1", "a", "(.*)") or n{job=~"{2,3}"}'
    assert render(template, ALL) == template
    assert template_placeholders(template) == ["b"]


def test_unknown_variable_raises() -> None:
    with pytest.raises(ValueError, match="unknown template variable"):
        render("m", {**ALL, "team": "x"})


def test_missing_value_raises() -> None:
    with pytest.raises(ValueError, match="no value was given"):
        render('m{v="{stable_version}"}', {"version": "1"})


@pytest.mark.parametrize("bad", ["30", "30s]) or vector(1", "1m30s", "-5s", "5 s"])
def test_window_must_be_a_plain_duration(bad: str) -> None:
    with pytest.raises(ValueError, match="window"):
        render("rate(m[{window}])", {"window": bad})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (30.0, "30s"),
        (2.5, "2500ms"),
        (0.2, "1s"),
        (0, "1s"),
        (600, "600s"),
        (0.0004, "1s"),
    ],
)
def test_window_formatting(seconds: float, text: str) -> None:
    assert window(seconds) == text


@given(st.text())
def test_any_value_stays_inside_one_matcher(value: str) -> None:
    try:
        out = render('m{v="{version}"}', {"version": value})
    except ValueError:
        return
    match = ONE_MATCHER.match(out)
    assert match, out
    assert match.group(1) == escape_string(value)
    assert "\n" not in out


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_escape_string_round_trips(value: str) -> None:
    """Whatever the validation allows, the escaping alone already keeps it one string literal."""
    out = f'm{{v="{escape_string(value)}"}}'
    match = ONE_MATCHER.match(out)
    assert match, out


@pytest.mark.parametrize(
    ("under", "matcher"),
    [
        (0.5, 'le="0.5"'),
        (0.025, 'le="0.025"'),
        (0.1 + 0.2, 'le="0.3"'),
        (1.0, 'le=~"1|1[.]0"'),
        (5, 'le=~"5|5[.]0"'),
        (2.5, 'le="2.5"'),
    ],
)
def test_le_matcher(under: float, matcher: str) -> None:
    assert queries.le_matcher(under) == matcher


def test_builtin_templates_render_with_namespace() -> None:
    prom = PrometheusConfig(namespace_label="kubernetes_namespace")
    check = CheckConfig(name="fast", type="latency", under=0.5, min=0.9)
    out = render(queries.check_template(check, prom, {}), ALL)
    sel = 'app="shop",version="1.0.371",kubernetes_namespace="default"'
    assert out == (
        f'sum(rate(http_request_duration_seconds_bucket{{{sel},le="0.5"}}[30s]))'
        f" / sum(rate(http_request_duration_seconds_count{{{sel}}}[30s]))"
    )
    err = render(queries.error_rate_template(prom), ALL)
    assert err == (
        f'(sum(rate(http_requests_total{{{sel},code=~"5.."}}[30s])) or vector(0))'
        f" / sum(rate(http_requests_total{{{sel}}}[30s]))"
    )
    assert render(queries.request_rate_template(PrometheusConfig()), ALL) == (
        'sum(rate(http_requests_total{app="shop",version="1.0.371"}[30s])) * 60'
    )
