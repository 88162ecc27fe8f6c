"""Blocks that stick, over HTTP on both ledgers: an operator blocks a machine
(its fingerprint) or a user on a license. Its live seats end at once; its
next heartbeat and borrow answer 403 `machine_blocked` / `user_blocked`; its
acquires are refused with the code and a `lease.denied` row; other machines
and users carry on; unblocking lets it acquire again. A lease a block did not
reach (another process's cache let an acquire through) ends at its next
heartbeat, with a `lease.ended` row naming the code."""

from __future__ import annotations

import pytest

from audit.events import Detail, Event
from audit.models import AuditLog
from coditect.personas import api_client
from core.errors import ApplicationError
from licenses.models import License
from licenses.selectors import license_cache_forget
from licenses.services import license_block, license_unblock
from licenses.tests.conftest import acquire, drain_ledger_events, error_code, live_sessions
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

HEARTBEAT = "/api/v1/licenses/heartbeat"


def rows(license, action) -> list[AuditLog]:
    drain_ledger_events(license)
    with tenant_scope(license.tenant_id):
        return list(AuditLog.objects.filter(action=action, target_id=str(license.id)).order_by("id"))


def stored(license) -> License:
    with tenant_scope(license.tenant_id):
        return License.objects.get(pk=license.pk)


def block_behind_the_cache(license, kind, value) -> None:
    """A block this process learns of only from the row (as a pod whose cache
    was stale when another made it), without the live seats it ended."""
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(
            blocks=[{"kind": kind, "value": value, "reason": "", "by": "", "at": None}]
        )
    license_cache_forget(instance=license)


def test_blocking_a_machine_ends_its_seat_and_its_heartbeat_says_why(ledger, member, admin, license):
    mine = acquire(member, license, "machine-0001").json()
    other = acquire(admin, license, "machine-0002").json()

    license_block(
        license=license, kind="machine", value="machine-0001", reason="shared key", actor=admin.user
    )

    assert live_sessions(ledger, license) == [other["session_id"]]
    refused = api_client(token=mine["token"]).post(HEARTBEAT)
    assert (refused.status_code, error_code(refused)) == (403, "machine_blocked")
    again = acquire(member, license, "machine-0001")
    assert (again.status_code, error_code(again)) == (403, "machine_blocked")
    assert api_client(token=other["token"]).post(HEARTBEAT).status_code == 200
    # The user is not blocked: on another machine they get a seat.
    assert acquire(member, license, "machine-0003").status_code == 201

    (blocked,) = rows(license, Event.LICENSE_BLOCKED)
    assert blocked.details == {"kind": "machine", "value": "machine-0001", "reason": "shared key"}
    assert blocked.actor == admin.user.email
    (released,) = rows(license, Event.LEASE_FORCE_RELEASED)
    assert released.details[Detail.SESSION_ID] == mine["session_id"]
    denied = [row.details for row in rows(license, Event.LEASE_DENIED)]
    assert denied == [{Detail.CODE: "machine_blocked", Detail.FINGERPRINT: "machine-0001"}]


def test_unblocking_a_machine_lets_it_acquire_again(ledger, member, license):
    acquire(member, license, "machine-0001")
    license_block(license=license, kind="machine", value="machine-0001")

    license_unblock(license=license, kind="machine", value="machine-0001")

    assert stored(license).blocks == []
    again = acquire(member, license, "machine-0001")
    assert again.status_code == 201
    assert api_client(token=again.json()["token"]).post(HEARTBEAT).status_code == 200
    (unblocked,) = rows(license, Event.LICENSE_UNBLOCKED)
    assert unblocked.details == {"kind": "machine", "value": "machine-0001", "reason": ""}


def test_blocking_a_user_ends_their_seats_on_every_machine_and_no_one_elses(ledger, member, admin, license):
    with tenant_scope(license.tenant_id):
        license.max_seats = 3
        license.save(update_fields=["max_seats"])
    first = acquire(member, license, "machine-0001").json()
    second = acquire(member, license, "machine-0002").json()
    other = acquire(admin, license, "machine-0003").json()

    license_block(license=license, kind="user", value=member.user.email, reason="left the company")

    assert stored(license).blocks[0]["value"] == str(member.user.pk)
    assert live_sessions(ledger, license) == [other["session_id"]]
    for seat in (first, second):
        refused = api_client(token=seat["token"]).post(HEARTBEAT)
        assert (refused.status_code, error_code(refused)) == (403, "user_blocked")
    for machine in ("machine-0001", "machine-0009"):
        again = acquire(member, license, machine)
        assert (again.status_code, error_code(again)) == (403, "user_blocked")
    assert api_client(token=other["token"]).post(HEARTBEAT).status_code == 200
    # The machine is not blocked: another user gets a seat on it.
    assert acquire(admin, license, "machine-0001").status_code == 201
    assert [row.details[Detail.CODE] for row in rows(license, Event.LEASE_DENIED)] == ["user_blocked"] * 2

    license_unblock(license=license, kind="user", value=str(member.user.pk))
    assert acquire(member, license, "machine-0002").status_code == 201


@pytest.mark.parametrize(("kind", "code"), [("machine", "machine_blocked"), ("user", "user_blocked")])
def test_a_lease_the_block_did_not_reach_ends_at_its_next_heartbeat(ledger, member, license, kind, code):
    seat = acquire(member, license, "machine-0001").json()
    block_behind_the_cache(license, kind, "machine-0001" if kind == "machine" else str(member.user.pk))

    refused = api_client(token=seat["token"]).post(HEARTBEAT)

    assert (refused.status_code, error_code(refused)) == (403, code)
    assert live_sessions(ledger, license) == []
    (ended,) = rows(license, Event.LEASE_ENDED)
    assert (ended.details[Detail.SESSION_ID], ended.details[Detail.REASON]) == (seat["session_id"], code)


@pytest.mark.parametrize(("kind", "code"), [("machine", "machine_blocked"), ("user", "user_blocked")])
def test_borrow_refuses_a_blocked_holder(ledger, member, license, kind, code):
    seat = acquire(member, license, "machine-0001").json()
    late = acquire(member, license, "machine-0002").json()
    value = "machine-0001" if kind == "machine" else str(member.user.pk)
    license_block(license=license, kind=kind, value=value)

    refused = api_client(token=seat["token"]).post("/api/v1/licenses/borrow", {"hours": 24}, format="json")
    assert (refused.status_code, error_code(refused)) == (403, code)

    if kind == "user":
        # Ended by the block already; one that escaped it is ended by the borrow.
        assert live_sessions(ledger, license) == []
        return
    block_behind_the_cache(license, "machine", "machine-0002")
    refused = api_client(token=late["token"]).post("/api/v1/licenses/borrow", {"hours": 24}, format="json")
    assert (refused.status_code, error_code(refused)) == (403, "machine_blocked")
    assert live_sessions(ledger, license) == []
    assert not rows(license, Event.LEASE_BORROWED)


def test_a_block_names_something_real_once(ledger, member, globex, license):
    from accounts.tests.factories import UserFactory

    stranger = UserFactory(tenant=globex)
    for kind, value in [("machine", ""), ("printer", "x"), ("user", "nobody@acme.test"), ("user", "nope")]:
        with pytest.raises(ApplicationError) as refused:
            license_block(license=license, kind=kind, value=value)
        assert refused.value.code == "invalid_request"
    with pytest.raises(ApplicationError):
        license_block(license=license, kind="user", value=str(stranger.pk))  # another tenant's user
    license_block(license=license, kind="machine", value="machine-0001")
    with pytest.raises(ApplicationError, match="already blocked"):
        license_block(license=license, kind="machine", value="machine-0001")
    with pytest.raises(ApplicationError, match="not blocked"):
        license_unblock(license=license, kind="machine", value="machine-0002")
    assert len(stored(license).blocks) == 1
    assert len(rows(license, Event.LICENSE_BLOCKED)) == 1
