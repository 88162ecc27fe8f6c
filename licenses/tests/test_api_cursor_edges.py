"""A pagination cursor of the right shape naming a time that has no UTC (year 1
at +14:00, year 9999 at -14:00) is a cursor no list handed out: 400
`invalid_request` on both databases (SQLite's adapter once failed on it, a 500)."""

from __future__ import annotations

import base64
import json

import pytest

from licenses.tests.factories import LicenseFactory

pytestmark = [pytest.mark.embedded]

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def cursor(*values) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("edge", EDGES)
def test_a_license_list_cursor_at_the_edge_of_the_calendar_is_a_400(admin, edge):
    LicenseFactory(tenant=admin.tenant)
    response = admin.client.get(
        "/api/v1/licenses/status",
        {"cursor": cursor("licenses", edge, "00000000-0000-0000-0000-000000000000")},
    )
    assert response.status_code == 400, (response.status_code, response.content[:200])


@pytest.mark.parametrize("edge", EDGES)
def test_an_invite_list_cursor_at_the_edge_of_the_calendar_is_a_400(admin, edge):
    response = admin.client.get(
        "/api/v1/invites", {"cursor": cursor("invites", edge, "00000000-0000-0000-0000-000000000000")}
    )
    assert response.status_code == 400, (response.status_code, response.content[:200])


@pytest.mark.parametrize("edge", EDGES)
def test_a_lease_page_cursor_at_the_edge_of_the_calendar_is_no_500(admin, edge, settings):
    license = LicenseFactory(tenant=admin.tenant)
    ledger_cursor = f"{edge}|x" if settings.SEAT_LEDGER != "redis" else "000000000000000:x"
    response = admin.client.get(
        "/api/v1/licenses/status",
        {"cursor": cursor("leases", str(license.id), ledger_cursor), "limit": 1},
        HTTP_X_LICENSE_KEY=license.key,
    )
    assert response.status_code in (200, 400), (response.status_code, response.content[:200])
