"""GET /api/v1/analytics/usage pages the licenses (each with every period of
the range asked for), as every list does."""

from __future__ import annotations

import pytest

from licenses.tests.factories import LicenseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

URL = "/api/v1/analytics/usage"


def test_usage_pages_the_licenses_oldest_first(admin, acme):
    made = [LicenseFactory(tenant=acme) for _ in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, "granularity": "day", **({"cursor": cursor} if cursor else {})}
        body = admin.client.get(URL, query).json()
        assert len(body["licenses"]) <= 2
        assert all(len(item["periods"]) >= 30 for item in body["licenses"])  # every day of the range
        seen += [item["license_id"] for item in body["licenses"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(license.id) for license in made]


def test_usage_of_one_license_has_no_next_page_and_a_bad_cursor_is_refused(admin, acme):
    license = LicenseFactory(tenant=acme)
    body = admin.client.get(URL, {"license_id": str(license.id)}).json()
    assert [item["license_id"] for item in body["licenses"]] == [str(license.id)]
    assert body["next_cursor"] is None
    for query in ({"cursor": "bogus"}, {"limit": 501}):
        response = admin.client.get(URL, query)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", query
