"""An acquire answered 503 has not happened (DESIGN.md invariant 8): when the
database fails after the ledger took the seat (the audit row, the commit of
the request's transaction), the seat is given back, on either ledger, and
the retry is a new acquire, not the old seat."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections

from audit.events import Event
from audit.models import AuditLog
from coditect.personas import tenant_member
from licenses import leases
from licenses.tests.conftest import acquire, error_code, live_sessions
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


def acquired_rows(license) -> int:
    with tenant_scope(license.tenant_id):
        return AuditLog.objects.filter(action=Event.LEASE_ACQUIRED, target_id=str(license.id)).count()


@pytest.mark.django_db
def test_a_database_that_fails_on_the_audit_row_leaves_no_seat_taken(ledger, member, license, monkeypatch):
    real = leases.audit_record

    def failing(**event):
        if event["action"] == Event.LEASE_ACQUIRED:
            raise OperationalError("the database went away")
        return real(**event)

    monkeypatch.setattr(leases, "audit_record", failing)
    refused = acquire(member, license)

    assert (refused.status_code, error_code(refused)) == (503, "service_unavailable")
    assert live_sessions(ledger, license) == []
    monkeypatch.setattr(leases, "audit_record", real)
    again = acquire(member, license)
    assert again.status_code == 201, again.content  # a new seat, not one the 503 left behind
    assert live_sessions(ledger, license) == [again.json()["session_id"]]
    assert acquired_rows(license) == 1


def test_a_commit_that_fails_leaves_no_seat_taken(committed_db, ledger, monkeypatch):
    # A real commit, so the request's own transaction is the one that fails.
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=2)
    connection = connections["default"]
    real_commit = type(connection).commit
    failed = []

    def commit(self):
        if self.alias == "default" and not failed:
            failed.append(True)
            raise OperationalError("the database went away at commit")
        return real_commit(self)

    monkeypatch.setattr(type(connection), "commit", commit)
    refused = acquire(member, license)

    assert failed and refused.status_code == 503
    assert live_sessions(ledger, license) == []
    assert acquired_rows(license) == 0
    assert acquire(member, license).status_code == 201


@pytest.mark.django_db
def test_an_acquire_that_hands_back_the_callers_live_lease_gives_nothing_back_on_failure(
    ledger, member, license, monkeypatch
):
    held = acquire(member, license).json()
    monkeypatch.setattr(
        leases, "license_token_issue", lambda **_: (_ for _ in ()).throw(OperationalError("x"))
    )
    assert acquire(member, license).status_code == 503
    assert live_sessions(ledger, license) == [held["session_id"]]  # the lease it already held stays
