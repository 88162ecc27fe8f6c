"""Check 3: the alert rules load and fire as meant (promtool), the dashboards'
queries parse, and every metric an alert or dashboard names is one the app
exports: /metrics is scraped after a little traffic and each one is there."""

from __future__ import annotations

import json

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy.tests.tools import MONITORING, metric_names, run, tool

ALERTS = MONITORING / "alerts.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))


def _alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    exprs = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [target["expr"] for target in panel["targets"]]
    return exprs


def _template_metric_names() -> set[str]:
    """Metrics the dashboards' variables list label values of (label_values(metric{...}, label))."""
    names = set()
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict) and query["query"].startswith("label_values("):
                names |= metric_names(query["query"].removeprefix("label_values(").rsplit(",", 1)[0])
    return names


def test_the_alert_rules_load_in_promtool():
    result = run(tool("promtool"), "check", "rules", str(ALERTS))
    assert "SUCCESS" in result.stdout + result.stderr


def test_each_alert_fires_on_the_series_meant_to_fire_it():
    run(tool("promtool"), "test", "rules", str(MONITORING / "alerts.test.yaml"), cwd=MONITORING)


def test_the_alerts_the_issue_names_are_all_there():
    alerts = {
        rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    }
    assert {
        "CoditectApiLatencyHigh",
        "CoditectApi5xxRateHigh",
        "CoditectLicenseSeatsExhausted",
        "CoditectDatabaseNotReady",
        "CoditectRedisNotReady",
        "CoditectCeleryBacklog",
    } <= alerts


def test_there_is_a_dashboard_for_each_of_the_seeds_four_views():
    titles = {json.loads(path.read_text())["title"].split(" / ")[1] for path in DASHBOARDS}
    assert titles == {"API performance", "Database health", "Redis", "Seat utilization"}


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses recording rules with Prometheus' own parser; Grafana's
    # variables become what they stand for.
    rules = []
    for number, expr in enumerate(_dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$tenant", ".*").replace("$license", ".*")
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query:{number}", "expr": expr})
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run(tool("promtool"), "check", "rules", str(path))


def test_the_metric_name_reader_finds_names_and_only_names():
    expr = (
        'histogram_quantile(0.95, sum by (le, view) (rate(a_bucket{view!~"x|y"}[5m]))) > 1e-3'
        ' and on (instance) b_total / ignoring (x) c unless absent(d{e="f"}) or vector(0) offset 5m'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}


def _traffic_then_scrape(client) -> set[str]:
    from coditect.celery import app as celery_app
    from licenses.ledger.gateway import seat_ledger
    from licenses.metrics import record_acquire_outcome, seat_collector
    from licenses.tests.factories import LicenseFactory
    from tenants.tests.factories import TenantFactory

    # A seat held, as an acquire holds it. (The license endpoints count their
    # own outcomes; here the recording functions stand in for them.)
    license = LicenseFactory(tenant=TenantFactory(), max_seats=2)
    seats = seat_ledger()
    held = seats.acquire(
        license_id=license.id,
        tenant_id=license.tenant_id,
        max_seats=2,
        fingerprint="fp-metrics",
        user_id=None,
        ttl=60,
    )
    record_acquire_outcome("granted")
    record_acquire_outcome("no_seats_available")

    @celery_app.task(name="deploy.tests.metrics_probe")
    def metrics_probe():
        return "ok"

    metrics_probe.apply()
    for path in ("/health", "/ready", "/no-such-page"):
        client.get(path)
    # A view that raised, as django_prometheus counts one (no view here raises
    # on purpose; run alone, this test would otherwise see none).
    from django.test import RequestFactory
    from django.urls import resolve
    from django_prometheus.middleware import PrometheusAfterMiddleware

    raised = RequestFactory().get("/health")
    raised.resolver_match = resolve("/health")
    PrometheusAfterMiddleware(lambda request: None).process_exception(raised, RuntimeError())
    seat_collector().forget()
    try:
        response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    finally:
        seats.release(license_id=license.id, tenant_id=license.tenant_id, session_id=held.lease.session_id)
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.content.decode()))
    samples = [sample for family in families for sample in family.samples]
    seats = {s.name: s.value for s in samples if s.labels.get("license") == str(license.id)}
    assert seats == {"coditect_license_seats_used": 1, "coditect_license_seats_max": 2}
    return {sample.name for sample in samples}


@pytest.mark.postgres
@pytest.mark.redis
def test_every_metric_an_alert_or_dashboard_names_is_exported_after_a_little_traffic(
    committed_db, client, settings
):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (the production ledger and broker)")
    settings.METRICS_TOKEN = "scrape-token"
    exported = _traffic_then_scrape(client)
    wanted = (
        set().union(*(metric_names(e) for e in _alert_exprs() + _dashboard_exprs()))
        | _template_metric_names()
    )
    assert wanted, "no metric names read from the rules and dashboards"
    assert not wanted - exported, f"named but not exported: {sorted(wanted - exported)}"


def test_metrics_are_not_served_without_the_scrape_token(client, db, settings):
    # coditect/tests/test_metrics_access.py tries every way around it.
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401
    assert client.get("/metrics", headers={"Forwarded": "for=203.0.113.9"}).status_code == 401
