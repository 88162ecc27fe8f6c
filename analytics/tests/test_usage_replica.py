"""The analytics read path (issue 18): the usage API, its CSV and the
dashboard's charts read their figures on the `replica` alias, connected as the
readonly role under row-level security, and nothing else does (licenses, the
monthly report, the seat ledger stay on the primary). The replica here is the
test database itself (coditect/testing.py), so the rows are committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.report_services import monthly_report_figures
from analytics.tests.factories import DailyUsageFactory, HourlyUsageFactory, UsageRollupRunFactory
from analytics.tests.member_world import signed_in
from coditect.personas import Persona, tenant_admin
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres

URL = "/api/v1/analytics/usage"
ROLLUP_TABLES = ('"usage_daily"', '"usage_hourly"', '"usage_rollup_run"')


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(analytics_on_replica):
    """Acme and Globex, a license each, with figures for today and this hour
    (the charts' windows end now), Globex's larger than any of Acme's."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin, outsider = tenant_admin(acme), tenant_admin(globex)
    now = timezone.now()
    today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    mine = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=5)
    theirs = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=40)
    for license, peak in ((mine, 4), (theirs, 37)):
        DailyUsageFactory(tenant=license.tenant, license=license, period_start=today, peak_seats=peak)
        HourlyUsageFactory(tenant=license.tenant, license=license, period_start=hour, peak_seats=peak - 1)
        UsageRollupRunFactory(tenant=license.tenant, license=license, rolled_up_to=now)
    return {"admin": admin, "outsider": outsider, "mine": mine, "theirs": theirs, "today": today, "now": now}


def statements(captured: CaptureQueriesContext) -> str:
    return "\n".join(query["sql"] for query in captured.captured_queries)


def captured_on_both():
    return CaptureQueriesContext(connections["replica"]), CaptureQueriesContext(connections["default"])


def usage(persona: Persona, world) -> dict:
    query = {"from": world["today"].isoformat(), "to": (world["today"] + timedelta(days=1)).isoformat()}
    response = persona.client.get(URL, query)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_usage_api_reads_its_figures_on_the_replica_and_only_its_tenants(world):
    replica, primary = captured_on_both()
    with replica, primary:
        body = usage(world["admin"], world)

    (license,) = body["licenses"]
    assert license["license_id"] == str(world["mine"].id)
    assert [period["peak_seats"] for period in license["periods"]] == [4]
    assert license["as_of"] is not None and body["as_of"] == license["as_of"]
    on_replica, on_primary = statements(replica), statements(primary)
    # The figures and their "as of" from the replica, in a transaction with the tenant set...
    assert '"usage_daily"' in on_replica and '"usage_rollup_run"' in on_replica
    assert "set_config('app.current_tenant'" in on_replica
    assert not any(table in on_primary for table in ROLLUP_TABLES)
    # ... the licenses (and the caller) from the primary.
    assert '"licenses"' in on_primary and '"licenses"' not in on_replica
    # And Globex's figures are Globex's alone.
    (foreign,) = usage(world["outsider"], world)["licenses"]
    assert foreign["license_id"] == str(world["theirs"].id)
    assert [period["peak_seats"] for period in foreign["periods"]] == [37]


def test_the_replica_answers_only_for_the_tenant_in_scope(world):
    """Handed Globex's license under Acme's scope, the read path finds none of
    its figures (row-level security alone, without the ORM's filter, is
    tenants/tests/test_readonly_role.py)."""
    from analytics.selectors import usage_series

    with tenant_scope(world["admin"].tenant.id):
        (item,) = usage_series(
            granularity="day",
            start=world["today"],
            end=world["today"] + timedelta(days=1),
            licenses=[world["theirs"]],
            from_replica=True,
        )
    assert item["as_of"] is None
    assert [period["peak_seats"] for period in item["periods"]] == [0]


def test_a_licenses_usage_charts_read_on_the_replica(world):
    client = signed_in("admin@acme.test")
    replica, primary = captured_on_both()
    with replica, primary:
        response = client.get(f"/dashboard/licenses/{world['mine'].id}/usage/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="hourly-chart" data-peak="3"' in html
    assert 'data-testid="daily-chart" data-peak="4"' in html
    assert "peak 37 seats" not in html and "peak 36 seats" not in html  # Globex's figures
    on_replica, on_primary = statements(replica), statements(primary)
    assert all(table in on_replica for table in ROLLUP_TABLES)
    assert not any(table in on_primary for table in ROLLUP_TABLES)
    # The other tenant's license is not found, on either database.
    assert client.get(f"/dashboard/licenses/{world['theirs'].id}/usage/").status_code == 404


def test_the_overview_cards_charts_read_on_the_replica(world):
    client = signed_in("admin@acme.test")
    replica, primary = captured_on_both()
    with replica, primary:
        response = client.get("/dashboard/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "30 days: peak 4 of 5 seats" in html
    assert "Globex CAD" not in html
    assert '"usage_daily"' in statements(replica)
    assert not any(table in statements(primary) for table in ROLLUP_TABLES)


def test_the_usage_csv_reads_on_the_replica(world):
    client = signed_in("admin@acme.test")
    day = world["today"].date().isoformat()
    replica, primary = captured_on_both()
    with replica, primary:
        response = client.get("/dashboard/usage/usage.csv", {"from": day, "to": day})
        text = b"".join(response.streaming_content).decode()

    assert response.status_code == 200
    assert "Acme Pro" in text and "Globex CAD" not in text
    assert '"usage_daily"' in statements(replica)
    assert not any(table in statements(primary) for table in ROLLUP_TABLES)


def test_the_monthly_report_reads_the_primary_where_it_stores_what_it_read(world):
    replica, primary = captured_on_both()
    with replica, primary, tenant_scope(world["mine"].tenant_id):
        figures = monthly_report_figures(license=world["mine"], month=world["today"].date().replace(day=1))

    assert figures["peak_seats"] == 4
    assert replica.captured_queries == []
    assert '"usage_daily"' in statements(primary)
