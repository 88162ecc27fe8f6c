"""GET /api/v1/analytics/usage: tenant admins see their own tenant's usage only."""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, datetime, timedelta

import pytest

from analytics.selectors import usage_period_count, usage_periods
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


def test_a_tenant_admin_gets_every_period_of_their_licenses_and_nothing_of_others(usage, admin):
    mine, _ = usage

    response = admin.client.get(URL, days())

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
        "overdraft_peak": 0,
        "overdraft_seconds": 0.0,
        "queued_acquisitions": 0,
        "queue_wait_seconds": 0.0,
        "queue_wait_max": 0.0,
    }
    assert second["peak_seats"] == 0 and second["avg_session_seconds"] is None


def test_hourly_granularity_reads_the_hourly_rollups(usage, admin):
    mine, _ = usage
    params = {"license_id": str(mine.id), "granularity": "hour", "from": MONDAY.isoformat()}
    params["to"] = (MONDAY + timedelta(hours=12)).isoformat()

    body = admin.client.get(URL, params).json()

    peaks = [period["peak_seats"] for period in body["licenses"][0]["periods"]]
    assert peaks == [0] * 9 + [3, 0, 0]


def test_another_tenants_license_is_not_found(usage, admin, outsider):
    _, theirs = usage

    response = admin.client.get(URL, days(license_id=str(theirs.id)))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "license_not_found"

    # And the other tenant's admin sees only their own.
    body = outsider.client.get(URL, days()).json()
    assert [item["license_id"] for item in body["licenses"]] == [str(theirs.id)]
    assert body["licenses"][0]["periods"][0]["peak_seats"] == 9


def test_a_plain_member_is_refused(usage, member):
    response = member.client.get(URL, days())

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
def test_bad_parameters_are_invalid_requests(usage, admin, params):
    response = admin.client.get(URL, params)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


@contextlib.contextmanager
def at_most(seconds: float):
    """Interrupt the block (TimeoutError) if it runs longer than `seconds`."""

    def interrupt(signum, frame):
        raise TimeoutError(f"took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    "params",
    [
        {"to": "0001-01-01T00:00:00Z"},
        {"to": "0001-01-01T00:00:00+01:00"},
        {"from": "9999-12-31T01:00Z", "to": "9999-12-31T23:00Z"},
        {"from": "9999-12-31T01:00Z"},
        {"from": "1000-01-01T00:00Z", "granularity": "hour"},
        {"from": "1969-12-31T23:00Z", "to": "1970-01-01T01:00Z", "granularity": "hour"},
    ],
    ids=[
        "to-year-1",
        "to-year-1-ahead-of-utc",
        "from-year-9999",
        "from-year-9999-alone",
        "year-1000",
        "before-1970",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_invalid_requests(usage, admin, params):
    with at_most(1.0):
        response = admin.client.get(URL, params)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_a_range_far_over_the_cap_is_refused_without_listing_its_periods(usage, admin, granularity):
    params = {"from": "1970-01-01T00:00Z", "to": "8999-12-31T00:00Z", "granularity": granularity}

    with at_most(1.0):
        response = admin.client.get(URL, params)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_range_of_exactly_the_cap_is_served(usage, admin):
    params = {"from": "2026-01-01T00:30Z", "to": "2026-02-01T00:30Z", "granularity": "hour"}
    assert admin.client.get(URL, params).status_code == 400  # 745 hours begun

    params.update({"from": "2026-01-01T00:00Z", "to": "2026-02-01T00:00Z"})
    response = admin.client.get(URL, params)

    assert response.status_code == 200, response.content
    assert len(response.json()["licenses"][0]["periods"]) == 31 * 24


@pytest.mark.parametrize(
    ("granularity", "start", "end"),
    [
        ("hour", "2026-06-01T00:00Z", "2026-06-01T00:00Z"),
        ("hour", "2026-06-01T00:00Z", "2026-06-01T00:00:00.000001Z"),
        ("hour", "2026-06-01T00:59Z", "2026-06-01T01:00Z"),
        ("hour", "2026-06-01T00:30Z", "2026-06-01T03:00Z"),
        ("hour", "2026-06-01T00:30Z", "2026-06-01T03:00:01Z"),
        ("day", "2026-06-01T12:00Z", "2026-06-01T00:00Z"),
        ("day", "2026-06-01T12:00Z", "2026-06-03T00:00Z"),
        ("day", "2026-06-01T12:00+02:00", "2026-06-03T00:00:01Z"),
    ],
)
def test_the_period_count_is_the_length_of_the_period_list(granularity, start, end):
    start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)

    assert usage_period_count(granularity, start, end) == len(usage_periods(granularity, start, end))


def test_the_schema_documents_the_parameters_and_errors(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/analytics/usage"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"license_id", "from", "to", "granularity"}
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
