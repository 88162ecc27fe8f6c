"""GET /licenses/status answers one page, whatever the number of live leases
(DESIGN.md invariant 12), on both seat ledgers."""

from __future__ import annotations

import base64
import json

import pytest

from licenses.tests.conftest import acquire, error_code
from licenses.tests.factories import LicenseFactory
from licenses.tests.seeding import seed_live_leases
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

STATUS = "/api/v1/licenses/status"


def seeded_license(ledger, acme, count: int, *, user_ids=(None,), name="Seeded"):
    license = LicenseFactory(tenant=acme, max_seats=100_000, name=name)
    with tenant_scope(acme.id):
        seed_live_leases(
            ledger, license_id=license.id, tenant_id=acme.id, count=count, user_ids=list(user_ids)
        )
    return license


def status(persona, license=None, **query):
    headers = {"X-License-Key": license.key} if license is not None else {}
    return persona.client.get(STATUS, query, headers=headers)


def every_page(persona, license, *, limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        body = status(persona, license, limit=limit, **({"cursor": cursor} if cursor else {})).json()
        [item] = body["licenses"]
        assert body["next_cursor"] == item["leases_next_cursor"]
        pages.append(item["leases"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_status_of_20000_live_leases_is_one_page_the_size_of_the_answer_for_60(ledger, admin, acme):
    few = seeded_license(ledger, acme, 60, user_ids=[str(admin.user.pk)])
    many = seeded_license(ledger, acme, 20_000, user_ids=[str(admin.user.pk)])

    small, large = status(admin, few, limit=50), status(admin, many, limit=50)
    assert small.status_code == large.status_code == 200
    [item] = large.json()["licenses"]
    assert item["seats"] == {"used": 20_000, "max": 100_000}
    assert len(item["leases"]) == 50 and large.json()["next_cursor"]
    # The same page, but for the seat count's digits (60 -> 20000).
    assert 0 <= len(large.content) - len(small.content) <= 3, (len(small.content), len(large.content))


def test_paging_through_status_hands_every_lease_exactly_once(ledger, admin, member, acme):
    license = seeded_license(ledger, acme, 1_234, user_ids=[str(admin.user.pk), str(member.user.pk), None])

    pages = every_page(admin, license, limit=500)
    assert [len(page) for page in pages] == [500, 500, 234]
    sessions = [lease["session_id"] for page in pages for lease in page]
    assert len(set(sessions)) == len(sessions) == 1_234

    own = every_page(member, license, limit=100)
    assert [len(page) for page in own] == [100, 100, 100, 100, 11]
    assert {lease["user_id"] for page in own for lease in page} == {str(member.user.pk)}


def test_status_by_default_pages_fifty_leases(ledger, admin, acme):
    license = seeded_license(ledger, acme, 51)
    [item] = status(admin, license).json()["licenses"]
    assert len(item["leases"]) == 50 and item["leases_next_cursor"]
    by_id = admin.client.get(STATUS, {"license_id": str(license.id), "cursor": item["leases_next_cursor"]})
    [rest] = by_id.json()["licenses"]
    assert len(rest["leases"]) == 1 and rest["leases_next_cursor"] is None


def test_status_of_every_license_pages_the_licenses_with_counts_and_first_leases(ledger, admin, member, acme):
    licenses = [seeded_license(ledger, acme, 12, name=f"Product {n}") for n in range(3)]
    acquire(member, licenses[0], "member-machine")

    first = admin.client.get(STATUS, {"limit": 2}).json()
    assert [item["id"] for item in first["licenses"]] == [str(lic.id) for lic in licenses[:2]]
    head = first["licenses"][0]
    assert head["seats"]["used"] == 13 and len(head["leases"]) == 10 and head["leases_next_cursor"]
    rest = admin.client.get(STATUS, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in rest["licenses"]] == [str(licenses[2].id)]
    assert rest["next_cursor"] is None

    # A license's next leases come with the license named.
    more = admin.client.get(STATUS, {"license_id": head["id"], "cursor": head["leases_next_cursor"]}).json()
    assert len(more["licenses"][0]["leases"]) == 3 and more["next_cursor"] is None
    # A member sees every count but only their own leases.
    [mine, *_] = member.client.get(STATUS).json()["licenses"]
    assert mine["seats"]["used"] == 13
    assert [lease["fingerprint"] for lease in mine["leases"]] == ["member-machine"]


def forged(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "many"},
        {"cursor": "not-a-cursor"},
        {"cursor": "!!!"},
        {"cursor": forged("leases", "x")},
        {"cursor": forged("invites", "2026-01-01T00:00:00+00:00", "x")},
        {"cursor": "A" * 2000},
    ],
)
def test_status_refuses_a_limit_out_of_range_and_a_cursor_it_did_not_hand_out(ledger, admin, acme, query):
    license = seeded_license(ledger, acme, 3)
    for named in (license, None):
        response = status(admin, named, **query)
        assert (response.status_code, error_code(response)) == (400, "invalid_request"), (named, query)


def test_status_refuses_one_licenses_cursor_for_another_and_a_lease_cursor_for_the_license_list(
    ledger, admin, acme
):
    one, other = seeded_license(ledger, acme, 3), seeded_license(ledger, acme, 3)
    cursor = status(admin, one, limit=1).json()["next_cursor"]
    assert status(admin, one, limit=1, cursor=cursor).status_code == 200
    for named in (other, None):
        response = status(admin, named, limit=1, cursor=cursor)
        assert (response.status_code, error_code(response)) == (400, "invalid_request")
    tampered = forged("leases", str(one.id), "2026-01-01T00:00:00|x|" if ledger.name == "redis" else "999:x")
    response = status(admin, one, cursor=tampered)
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
