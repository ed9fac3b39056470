"""Delivery outcome metrics (app/telemetry/delivery.py): what a platform team charts from /metrics and
reads on the dashboard — releases by outcome, change failure rate, time to detect, time to restore —
after real releases through the engine on a real Redis (the router is the in-memory FakeRouter)."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.context import Context
from tests.support.fakes import FakePrometheus, FakeRouter
from tests.web.test_known_bad_and_rollback import AUTH, client, ctx, failed_release, promoted

__all__ = ["client", "ctx"]  # the fixtures, shared with the known-bad tests


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for s in family.samples
    }


def labels(outcome: str) -> tuple[tuple[str, str], ...]:
    return (("application", "shop"), ("outcome", outcome), ("service", "web"))  # sorted, as scrape() keeps them


def test_a_rollback_a_promotion_and_a_revert_are_counted_per_service(
    client: FlaskClient, ctx: Context, prom: FakePrometheus, router: FakeRouter
) -> None:
    failed_release(client, ctx, prom)  # 1.1.0: half its answers are 500s, rolled back by the judge
    promoted(client, ctx, "1.2.0")
    resp = client.post("/api/v1/services/web/rollback", json={"reason": "checkout broken"}, headers=AUTH)
    assert resp.status_code == 201, resp.get_json()
    assert {v: w for v, w in router.weights["web"].items() if w} == {"1.0.0": 100}

    m = scrape(client)
    web = (("application", "shop"), ("service", "web"))
    for outcome, n in (("rolled_back", 1), ("promoted", 1), ("reverted", 1)):
        assert m[("sluice_delivery_releases_total", labels(outcome))] == n, outcome
    assert ("sluice_delivery_releases_total", labels("aborted")) not in m
    assert m[("sluice_delivery_time_to_detect_seconds_count", web)] == 1  # only the judged failure
    assert m[("sluice_delivery_time_to_restore_seconds_count", web)] == 2  # the failure and the revert
    assert m[("sluice_delivery_release_duration_seconds_count", web)] == 3
    detect = m[("sluice_delivery_time_to_detect_seconds_sum", web)]
    assert 0 < detect < 30, detect  # first traffic to the failing decision, within the test's run
    restore = m[("sluice_delivery_time_to_restore_seconds_sum", web)]
    assert restore >= detect  # restoring comes after detecting

    resp = client.get("/api/v1/delivery")
    assert resp.status_code == 200, resp.get_json()
    [row] = resp.get_json()["services"]
    assert (row["application"], row["service"], row["releases"]) == ("shop", "web", 3)
    assert row["outcomes"] == {"promoted": 1, "rolled_back": 1, "aborted": 0, "reverted": 1}
    assert row["change_failure_rate"] == round(2 / 3, 4)
    assert row["mean_time_to_detect_seconds"] == round(detect, 1)
    assert row["mean_time_to_restore_seconds"] == round(restore / 2, 1)


def test_an_abort_counts_as_aborted_and_not_as_a_change_failure(client: FlaskClient, ctx: Context) -> None:
    rid = client.post("/hooks/deploy", json={"service": "web", "version": "1.3.0"}, headers=AUTH).get_json()["release"]
    assert client.post(f"/api/v1/releases/{rid}/abort", headers=AUTH).status_code == 200
    [row] = client.get("/api/v1/delivery").get_json()["services"]
    assert row["outcomes"]["aborted"] == 1 and row["change_failure_rate"] == 0.0
    assert row["mean_time_to_restore_seconds"] is None and row["mean_time_to_detect_seconds"] is None
