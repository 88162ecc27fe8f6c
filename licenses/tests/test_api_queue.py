"""The queue and group rules over HTTP (issue 17), on both ledgers: 202 and a
ticket, polls that move up and end in 201, the ticket token that is the
holder's alone, the error codes each produced (`queue_full`,
`ticket_not_found`, `group_limit_reached`), and their audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from analytics.models import HourlyUsage
from analytics.services import floor_hour, usage_rollup_license
from audit.models import AuditLog
from coditect.personas import Persona, api_client
from licenses.models import License
from licenses.selectors import license_cache_forget
from licenses.tests.conftest import acquire, error_code
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def rows(tenant, action: str) -> list[AuditLog]:
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_a_queued_acquire_gets_a_ticket_moves_up_and_then_the_seat(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=10, queue_ticket_ttl=30)
    held = acquire(admin, license, "machine-0001").json()
    other = Persona(UserFactory(tenant=acme, role=Role.USER, email="other@acme.test"))
    first = acquire(other, license, "machine-0002", queue=True)
    queued = acquire(member, license, "machine-0003", queue=True)

    assert first.status_code == queued.status_code == 202
    body = queued.json()
    assert set(body) == {
        "ticket_id",
        "ticket",
        "position",
        "waiting",
        "poll_after",
        "expires_at",
        "queued_at",
    }
    assert (body["position"], body["waiting"], body["poll_after"]) == (2, 2, 5)
    [row] = [row for row in rows(acme, "lease.queued") if row.details["ticket_id"] == body["ticket_id"]]
    assert row.details["position"] == 2 and row.details["fingerprint"] == "machine-0003"

    # The seat frees: the head of the queue takes it; the second moves up.
    api_client(token=held["token"]).delete("/api/v1/licenses/release")
    assert acquire(member, license, "machine-0003", ticket=body["ticket"]).status_code == 202
    plain = acquire(admin, license, "machine-0009")  # a plain acquire waits its turn
    assert plain.status_code == 409 and plain.json()["error"]["details"]["held_for"] == "queue"
    head = acquire(other, license, "machine-0002", ticket=first.json()["ticket"])
    assert head.status_code == 201
    api_client(token=head.json()["token"]).delete("/api/v1/licenses/release")
    polled = acquire(member, license, "machine-0003", ticket=body["ticket"])
    assert polled.status_code == 201 and polled.json()["token"]
    [granted] = [
        row for row in rows(acme, "lease.acquired") if row.details.get("ticket_id") == body["ticket_id"]
    ]
    assert granted.details["waited_seconds"] >= 0
    # Polls wrote no row of their own: one lease.queued per ticket.
    assert len(rows(acme, "lease.queued")) == 2

    # The rollups keep the acquires that waited, and how long.
    now = timezone.now()
    usage_rollup_license(
        license_id=license.id,
        tenant_id=acme.id,
        start=now - timedelta(hours=1),
        end=now + timedelta(seconds=1),
    )
    with tenant_scope(acme.id):
        hour = HourlyUsage.objects.get(license=license, period_start=floor_hour(now))
    assert hour.queued_acquisitions == 2
    assert hour.queue_wait_max >= granted.details["waited_seconds"]
    assert hour.queue_wait_seconds >= hour.queue_wait_max


def test_a_license_that_does_not_queue_answers_queue_full(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1)
    acquire(admin, license, "machine-0001")
    refused = acquire(member, license, "machine-0002", queue=True)
    assert refused.status_code == 409 and error_code(refused) == "queue_full"
    assert refused.json()["error"]["details"] == {"waiting": 0, "max_tickets": 0}


def test_a_full_queue_answers_queue_full(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=1)
    acquire(admin, license, "machine-0001")
    assert acquire(admin, license, "machine-0002", queue=True).status_code == 202
    refused = acquire(member, license, "machine-0003", queue=True)
    assert refused.status_code == 409 and error_code(refused) == "queue_full"
    assert refused.json()["error"]["details"] == {"waiting": 1, "max_tickets": 1}
    assert [row.details["code"] for row in rows(acme, "lease.denied")] == ["queue_full"]


def test_a_ticket_is_its_holders_alone_and_a_forged_one_is_not_found(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=5)
    acquire(admin, license, "machine-0001")
    ticket = acquire(member, license, "machine-0002", queue=True).json()["ticket"]
    for persona, fingerprint, token in (
        (admin, "machine-0002", ticket),  # another user
        (member, "machine-0003", ticket),  # another machine
        (member, "machine-0002", ticket[:-2] + "xx"),  # tampered
        (member, "machine-0002", "not-a-ticket"),
    ):
        refused = acquire(persona, license, fingerprint, ticket=token)
        assert refused.status_code == 404 and error_code(refused) == "ticket_not_found", fingerprint
    # The holder's own poll still finds it.
    assert acquire(member, license, "machine-0002", ticket=ticket).json()["position"] == 1


def test_a_ticket_of_another_license_is_not_found(ledger, member, admin, acme):
    one = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=5)
    two = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=5)
    acquire(admin, one, "machine-0001")
    acquire(admin, two, "machine-0001")
    ticket = acquire(member, one, "machine-0002", queue=True).json()["ticket"]
    refused = acquire(member, two, "machine-0002", ticket=ticket)
    assert refused.status_code == 404 and error_code(refused) == "ticket_not_found"


def test_a_group_at_its_max_answers_group_limit_reached(ledger, member, admin, acme):
    other = Persona(UserFactory(tenant=acme, role=Role.USER, email="other@acme.test"))
    rules = [
        {
            "name": "design",
            "users": [str(member.user.pk), str(other.user.pk)],
            "machines": [],
            "reserve": 0,
            "max": 1,
            "priority": 0,
        }
    ]
    license = LicenseFactory(tenant=acme, max_seats=5, seat_rules=rules)
    first = acquire(member, license, "machine-0001")
    assert first.status_code == 201
    refused = acquire(other, license, "machine-0002")
    assert refused.status_code == 409 and error_code(refused) == "group_limit_reached"
    assert refused.json()["error"]["details"] == {"group": "design", "max": 1, "held": 1}
    # Someone outside the group is not held back.
    assert acquire(admin, license, "machine-0003").status_code == 201
    [granted] = [row for row in rows(acme, "lease.acquired") if row.details.get("group")]
    assert granted.details["group"] == "design"


def test_a_reservation_keeps_seats_for_its_group(ledger, member, admin, acme):
    rules = [{"name": "on call", "users": [str(member.user.pk)], "machines": [], "reserve": 1, "max": None}]
    license = LicenseFactory(tenant=acme, max_seats=2, seat_rules=rules)
    assert acquire(admin, license, "machine-0001").status_code == 201
    refused = acquire(admin, license, "machine-0002")
    assert refused.status_code == 409 and error_code(refused) == "no_seats_available"
    assert refused.json()["error"]["details"] == {"used": 1, "max": 2, "held_for": "reserved"}
    assert acquire(member, license, "machine-0003").status_code == 201


def test_a_user_blocked_while_queued_leaves_the_queue(ledger, member, admin, acme):
    from licenses.services import license_block

    license = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=5, queue_ticket_ttl=600)
    held = acquire(admin, license, "machine-0001").json()
    assert acquire(member, license, "machine-0002", queue=True).status_code == 202
    license_block(license=license, kind="user", value=str(member.user.pk))
    api_client(token=held["token"]).delete("/api/v1/licenses/release")
    # The blocked user's ticket went with the block: the seat is anyone's.
    other = Persona(UserFactory(tenant=acme, role=Role.USER, email="other@acme.test"))
    assert acquire(other, license, "machine-0003").status_code == 201


def test_a_holder_refused_for_good_while_polling_leaves_the_queue(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, queue_max_tickets=5, queue_ticket_ttl=600)
    held = acquire(admin, license, "machine-0001").json()
    ticket = acquire(member, license, "machine-0002", queue=True).json()["ticket"]
    with tenant_scope(acme.id):
        License.objects.filter(pk=license.pk).update(blocks=[{"kind": "machine", "value": "machine-0002"}])
    license_cache_forget(instance=license)  # as LICENSE_CACHE_SECONDS would, later
    refused = acquire(member, license, "machine-0002", ticket=ticket)
    assert refused.status_code == 403 and error_code(refused) == "machine_blocked"
    api_client(token=held["token"]).delete("/api/v1/licenses/release")
    assert acquire(admin, license, "machine-0003").status_code == 201
