"""`status_answer` is the one builder of the status answer (issue 18): for
every shape the status call can take it writes exactly what
StatusOutputSerializer writes, byte for byte once rendered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.renderers import JSONRenderer

from licenses.apis import LicenseStatusApi, status_answer
from licenses.leases import lease_acquire, lease_borrow
from licenses.ledger.base import Lease
from licenses.selectors import license_status_page
from licenses.signing import license_token_verify
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def rendered(value) -> dict:
    return json.loads(JSONRenderer().render(value))


def assert_as_the_serializer_writes(answer: dict) -> None:
    expected = rendered(LicenseStatusApi.StatusOutputSerializer(answer).data)
    assert rendered(status_answer(answer)) == expected
    assert json.dumps(rendered(status_answer(answer))) == json.dumps(expected)  # the same keys, in order


def test_one_license_with_leases_a_borrowed_one_and_a_next_page(ledger, admin, member, acme):
    license = LicenseFactory(tenant=acme, max_seats=5, entitlements={"pro": True}, borrow_limit_hours=48)
    with tenant_scope(acme.id):
        first = lease_acquire(user=member.user, license_key=license.key, fingerprint="machine-0001")
        lease_acquire(user=admin.user, license_key=license.key, fingerprint="machine-0002")
    lease_borrow(claims=license_token_verify(first.token), hours=2)
    with tenant_scope(acme.id):
        for user, limit in ((admin.user, 1), (admin.user, 50), (member.user, 50)):
            answer = license_status_page(user=user, limit=limit, license_id=license.id)
            assert answer["licenses"][0]["leases"]
            assert_as_the_serializer_writes(answer)


def test_a_page_of_licenses_suspended_and_expired_among_them(ledger, admin, acme):
    now = datetime.now(UTC)
    LicenseFactory(tenant=acme, max_seats=3)
    LicenseFactory(tenant=acme, max_seats=3, suspended=True)
    LicenseFactory(tenant=acme, max_seats=3, expires_at=now - timedelta(days=1))
    LicenseFactory(tenant=acme, max_seats=3, expires_at=now + timedelta(days=30))
    with tenant_scope(acme.id):
        for limit in (2, 10):
            answer = license_status_page(user=admin.user, limit=limit)
            assert_as_the_serializer_writes(answer)
        assert {entry["state"] for entry in answer["licenses"]} == {"active", "suspended", "expired"}


def test_every_value_a_status_can_hold_microseconds_and_no_user_included():
    moment = datetime(2026, 12, 4, 19, 30, 5, 123456, tzinfo=UTC)
    lease = Lease(
        session_id="s" * 22,
        license_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        fingerprint="machine-0001",
        user_id=None,
        created_at=moment,
        expires_at=moment + timedelta(minutes=6),
        borrowed_until=moment + timedelta(hours=2),
    )
    status = {
        "id": uuid.uuid4(),
        "name": "Acme Pro ü",
        "key_prefix": "CDT-ABCD",
        "state": "grace",
        "expires_at": moment - timedelta(days=1),
        "grace_until": moment + timedelta(days=6),
        "policy": "standard",
        "entitlements": {"pro": True, "export": True},
        "seats": {"used": 1, "max": 10},
        "leases": [lease, Lease(**{**lease.__dict__, "user_id": str(uuid.uuid4()), "borrowed_until": None})],
        "leases_next_cursor": "next-page",
    }
    assert_as_the_serializer_writes({"licenses": [status], "next_cursor": None})
    assert_as_the_serializer_writes(
        {"licenses": [{**status, "expires_at": None, "grace_until": None, "leases": []}], "next_cursor": "x"}
    )
