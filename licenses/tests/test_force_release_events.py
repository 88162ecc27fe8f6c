"""A force-release (an operator in the admin, a tenant admin on the dashboard)
goes with its event like a client's release (DESIGN.md invariant 8): on the
Redis ledger the event is kept with the change and the console's own drain
writes it at once, naming who released; a database that fails right after
the release does not turn a release that happened into an error, and the
drainer writes the row later."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from audit.events import Event
from audit.models import AuditLog
from coditect.personas import tenant_admin
from licenses import leases
from licenses.ledger import get_seat_ledger
from licenses.tests.conftest import acquire, drain_ledger_events, live_sessions
from tenants.scope import tenant_scope

pytestmark = pytest.mark.django_db


def force_released_rows(license) -> list[AuditLog]:
    with tenant_scope(license.tenant_id):
        return list(AuditLog.objects.filter(action=Event.LEASE_FORCE_RELEASED, target_id=str(license.id)))


@pytest.mark.embedded
def test_a_force_release_is_recorded_at_once_with_who_released(
    ledger, member, license, django_capture_on_commit_callbacks
):
    seat = acquire(member, license).json()
    operator = tenant_admin(license.tenant).user

    with django_capture_on_commit_callbacks(execute=True):
        leases.lease_force_release(license=license, session_id=seat["session_id"], actor=operator)

    assert live_sessions(ledger, license) == []
    (row,) = force_released_rows(license)
    assert (row.user_id, row.actor) == (operator.pk, operator.email)
    assert row.details["session_id"] == seat["session_id"]
    assert row.details["user_id"] == str(member.user.pk)
    drain_ledger_events(license)
    assert len(force_released_rows(license)) == 1, "recorded once"


@pytest.mark.redis
def test_a_database_failing_after_a_force_release_does_not_undo_it(
    settings, member, license, monkeypatch, django_capture_on_commit_callbacks
):
    # The database ledger's release and its row are one transaction: nothing fails after it.
    settings.SEAT_LEDGER = "redis"
    ledger = get_seat_ledger("redis")
    seat = acquire(member, license).json()
    operator = tenant_admin(license.tenant).user
    real = leases._events_record

    def database_gone(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(leases, "_events_record", database_gone)
    with django_capture_on_commit_callbacks(execute=True):
        released = leases.lease_force_release(license=license, session_id=seat["session_id"], actor=operator)

    assert released.session_id == seat["session_id"]
    assert live_sessions(ledger, license) == []
    assert force_released_rows(license) == []
    monkeypatch.setattr(leases, "_events_record", real)
    drain_ledger_events(license)
    (row,) = force_released_rows(license)
    assert (row.user_id, row.actor) == (operator.pk, operator.email)
