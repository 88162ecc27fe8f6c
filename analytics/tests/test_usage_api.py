"""GET /api/v1/analytics/usage: tenant admins see their own tenant's usage only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.tests.conftest import api_client
from analytics.tests.factories import DailyUsageFactory, HourlyUsageFactory
from licenses.tests.factories import LicenseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

URL = "/api/v1/analytics/usage"
MONDAY = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def usage(acme, globex):
    mine = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=5)
    theirs = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=9)
    DailyUsageFactory(
        tenant=acme,
        license=mine,
        period_start=MONDAY,
        peak_seats=4,
        acquisitions=7,
        denials=2,
        denials_by_code={"no_seats_available": 2},
        distinct_users=3,
        distinct_machines=4,
        sessions_ended=6,
        session_seconds=9000.0,
    )
    DailyUsageFactory(tenant=globex, license=theirs, period_start=MONDAY, peak_seats=9)
    HourlyUsageFactory(tenant=acme, license=mine, period_start=MONDAY + timedelta(hours=9), peak_seats=3)
    return mine, theirs


def days(**params) -> dict:
    return {"from": MONDAY.isoformat(), "to": (MONDAY + timedelta(days=3)).isoformat(), **params}


def test_a_tenant_admin_gets_every_period_of_their_licenses_and_nothing_of_others(usage, acme_admin):
    mine, _ = usage

    response = api_client(acme_admin).get(URL, days())

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["granularity"] == "day"
    (license,) = body["licenses"]
    assert (license["license_id"], license["name"], license["max_seats"]) == (str(mine.id), "Acme Pro", 5)
    assert [p["period_start"] for p in license["periods"]] == [
        (MONDAY + timedelta(days=n)).isoformat().replace("+00:00", "Z") for n in range(3)
    ]
    first, second, _ = license["periods"]
    assert first == {
        "period_start": first["period_start"],
        "peak_seats": 4,
        "acquisitions": 7,
        "denials": 2,
        "denials_by_code": {"no_seats_available": 2},
        "distinct_users": 3,
        "distinct_machines": 4,
        "sessions_ended": 6,
        "session_seconds": 9000.0,
        "avg_session_seconds": 1500.0,
    }
    assert second["peak_seats"] == 0 and second["avg_session_seconds"] is None


def test_hourly_granularity_reads_the_hourly_rollups(usage, acme_admin):
    mine, _ = usage
    params = {"license_id": str(mine.id), "granularity": "hour", "from": MONDAY.isoformat()}
    params["to"] = (MONDAY + timedelta(hours=12)).isoformat()

    body = api_client(acme_admin).get(URL, params).json()

    peaks = [period["peak_seats"] for period in body["licenses"][0]["periods"]]
    assert peaks == [0] * 9 + [3, 0, 0]


def test_another_tenants_license_is_not_found(usage, acme_admin, globex_admin):
    _, theirs = usage

    response = api_client(acme_admin).get(URL, days(license_id=str(theirs.id)))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "license_not_found"

    # And the other tenant's admin sees only their own.
    body = api_client(globex_admin).get(URL, days()).json()
    assert [item["license_id"] for item in body["licenses"]] == [str(theirs.id)]
    assert body["licenses"][0]["periods"][0]["peak_seats"] == 9


def test_a_plain_member_is_refused(usage, acme_member):
    response = api_client(acme_member).get(URL, days())

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_no_token_is_not_authenticated(usage, client):
    response = client.get(URL, days())

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "params",
    [
        {"granularity": "week"},
        {"from": "yesterday"},
        {"from": "2026-06-03T00:00:00Z", "to": "2026-06-01T00:00:00Z"},
        {"granularity": "hour", "from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"},
        {"license_id": "not-a-uuid"},
    ],
    ids=["granularity", "from", "backwards", "too-long", "license-id"],
)
def test_bad_parameters_are_invalid_requests(usage, acme_admin, params):
    response = api_client(acme_admin).get(URL, params)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


def test_the_schema_documents_the_parameters_and_errors(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/analytics/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"license_id", "from", "to", "granularity"}
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
