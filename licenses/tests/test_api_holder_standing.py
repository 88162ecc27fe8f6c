"""A seat lives only while its holder may hold it (DESIGN.md invariant 11),
over HTTP on both ledgers: deactivating or deleting the user, or deactivating
the tenant, ends the lease at its next heartbeat with the reason's code,
refuses borrow, frees the seat, and an audit event says why."""

from __future__ import annotations

import pytest

from audit.events import Detail, Event
from audit.models import AuditLog
from coditect.personas import api_client
from licenses.tests.conftest import acquire, drain_ledger_events, error_code, live_sessions
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def deactivate_user(persona) -> None:
    with tenant_scope(persona.tenant.id):
        persona.user.is_active = False
        persona.user.save(update_fields=["is_active"])


def delete_user(persona) -> None:
    with tenant_scope(persona.tenant.id):
        persona.user.delete()


def deactivate_tenant(persona) -> None:
    tenant = persona.tenant
    with tenant_scope(tenant.id):
        tenant.is_active = False
        tenant.save(update_fields=["is_active"])


def ended_for(license, session_id) -> list[str]:
    drain_ledger_events(license)
    with tenant_scope(license.tenant_id):
        rows = AuditLog.objects.filter(action=Event.LEASE_ENDED, target_id=str(license.id))
        return [row.details[Detail.REASON] for row in rows if row.details[Detail.SESSION_ID] == session_id]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (deactivate_user, "user_inactive"),
        (delete_user, "user_inactive"),
        (deactivate_tenant, "tenant_inactive"),
    ],
)
def test_the_next_heartbeat_ends_the_seat_with_the_reason(ledger, member, license, change, code):
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200

    change(member)
    refused = seat.post("/api/v1/licenses/heartbeat")

    assert (refused.status_code, error_code(refused)) == (403, code)
    assert live_sessions(ledger, license) == []
    assert ended_for(license, checkout["session_id"]) == [code]
    again = seat.post("/api/v1/licenses/heartbeat")
    assert (again.status_code, error_code(again)) == (404, "session_not_found")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (deactivate_user, "user_inactive"),
        (delete_user, "user_inactive"),
        (deactivate_tenant, "tenant_inactive"),
    ],
)
def test_borrow_refuses_and_ends_the_seat(ledger, member, license, change, code):
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])

    change(member)
    refused = seat.post("/api/v1/licenses/borrow", {"hours": 24}, format="json")

    assert (refused.status_code, error_code(refused)) == (403, code)
    assert live_sessions(ledger, license) == []
    assert ended_for(license, checkout["session_id"]) == [code]
    with tenant_scope(license.tenant_id):
        assert not AuditLog.objects.filter(action=Event.LEASE_BORROWED).exists()


def test_another_users_deactivation_leaves_this_users_seat_alone(ledger, admin, member, license):
    mine = acquire(member, license).json()
    acquire(admin, license, "machine-0002")

    deactivate_user(admin)

    assert api_client(token=mine["token"]).post("/api/v1/licenses/heartbeat").status_code == 200
    assert mine["session_id"] in live_sessions(ledger, license)


def test_a_reactivated_user_acquires_again(ledger, member, license):
    seat = api_client(token=acquire(member, license).json()["token"])
    deactivate_user(member)
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 403
    with tenant_scope(member.tenant.id):
        member.user.is_active = True
        member.user.save(update_fields=["is_active"])
    again = acquire(member, license)
    assert again.status_code == 201
    assert api_client(token=again.json()["token"]).post("/api/v1/licenses/heartbeat").status_code == 200
