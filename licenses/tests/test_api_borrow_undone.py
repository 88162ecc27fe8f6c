"""A borrow answered 503 has not happened (DESIGN.md invariant 8): when its
signature or its audit row fails after the ledger made the borrow, the lease
is as it was before, on either ledger: live, and borrowed only if it was
borrowed already, until the same end. (A borrow first heartbeats the lease,
so its expiry may have moved on by that heartbeat, never to the borrow's.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, transaction

from audit.events import Event
from coditect.personas import api_client
from core.errors import ServiceUnavailable
from licenses import leases
from licenses.ledger.gateway import seat_ledger
from licenses.tests.conftest import acquire, drain_ledger_events, error_code
from licenses.tests.factories import LicenseFactory

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def license(acme):
    return LicenseFactory(tenant=acme, max_seats=2, borrow_limit_hours=48)


def the_lease(license, session_id):
    (lease,) = [
        lease
        for lease in seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
        if lease.session_id == session_id
    ]
    return lease


def assert_as_before(after, before):
    assert after.borrowed_until == before.borrowed_until
    if before.borrowed_until is None:
        assert before.expires_at <= after.expires_at <= before.expires_at + timedelta(seconds=30)
    else:
        assert after.expires_at == before.expires_at


def borrow(token, hours):
    response = api_client(token=token).post("/api/v1/licenses/borrow", {"hours": hours}, format="json")
    # The 503's handler abandons the request's transaction, here the test's own.
    transaction.set_rollback(False)
    return response


@pytest.mark.parametrize("borrowed_already", [False, True], ids=["online", "borrowed"])
def test_a_borrow_whose_token_cannot_be_signed_leaves_the_lease_as_it_was(
    ledger, member, license, monkeypatch, borrowed_already
):
    seat = acquire(member, license).json()
    token = seat["token"]
    if borrowed_already:
        token = borrow(token, 2).json()["token"]
    before = the_lease(license, seat["session_id"])

    def signer_down(**kwargs):
        raise ServiceUnavailable("The signing key service does not answer.")

    real = leases.license_token_issue
    monkeypatch.setattr(leases, "license_token_issue", signer_down)
    refused = borrow(token, 48)

    assert (refused.status_code, error_code(refused)) == (503, "service_unavailable")
    after = the_lease(license, seat["session_id"])
    assert_as_before(after, before)
    monkeypatch.setattr(leases, "license_token_issue", real)
    assert borrow(token, 48).status_code == 200
    drain_ledger_events(license)


def test_a_borrow_whose_audit_row_fails_leaves_the_lease_as_it_was(ledger, member, license, monkeypatch):
    """The database ledger writes the borrow's row in the borrow's
    transaction; the Redis ledger keeps the event with the change (the
    drainer writes it), so no row can fail there after the change."""
    seat = acquire(member, license).json()
    before = the_lease(license, seat["session_id"])
    real = leases.audit_record_standalone

    def failing(**event):
        if event["action"] == Event.LEASE_BORROWED:
            raise OperationalError("the database went away")
        return real(**event)

    monkeypatch.setattr(leases, "audit_record_standalone", failing)
    answer = borrow(seat["token"], 48)

    after = the_lease(license, seat["session_id"])
    if seat_ledger().records_events:
        assert answer.status_code == 200
        assert after.borrowed_until is not None
    else:
        assert (answer.status_code, error_code(answer)) == (503, "service_unavailable")
        assert_as_before(after, before)
