"""Floating-license rules over HTTP (issue 17), on both ledgers: overdraft
seats (the answer, the token's `ovr`, the audit row, the notice, the rollup's
overdraft peak) and linger (the release's `linger_until`, the holder's seat
back, everyone else refused)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.models import HourlyUsage
from analytics.services import floor_hour, usage_rollup_license
from audit.models import AuditLog
from coditect.personas import api_client
from licenses import notices
from licenses.leases import lease_force_release
from licenses.signing import license_token_verify
from licenses.tests.conftest import acquire, drain_ledger_events, error_code
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fresh_notice_markers(eager_tasks):
    notices._enqueued.clear()
    yield
    notices._enqueued.clear()


def rows(tenant, action: str) -> list[AuditLog]:
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_an_overdraft_seat_says_so_in_the_answer_the_token_and_the_audit_log(
    ledger, member, admin, acme, django_capture_on_commit_callbacks
):
    license = LicenseFactory(tenant=acme, name="Acme Floating", max_seats=1, overdraft_seats=1)

    with django_capture_on_commit_callbacks(execute=True):
        first = acquire(member, license, "machine-0001")
        extra = acquire(admin, license, "machine-0002")
        refused = acquire(member, license, "machine-0003")

    assert first.status_code == extra.status_code == 201
    assert first.json()["overdraft"] is False and "ovr" not in license_token_verify(first.json()["token"])
    assert extra.json()["overdraft"] is True and license_token_verify(extra.json()["token"])["ovr"] is True
    assert extra.json()["seats"] == {"used": 2, "max": 1}
    assert refused.status_code == 409 and error_code(refused) == "no_seats_available"
    acquired = rows(acme, "lease.acquired")
    assert [row.details.get("overdraft") for row in acquired] == [None, True]

    # The admins hear of it once a day, by email and as the license.overdraft event.
    [notice] = rows(acme, "license.overdraft")
    assert notice.details["max"] == 1 and notice.details["overdraft"] == 1

    def overdraft_emails():
        return [message for message in mail.outbox if "past the limit" in message.subject]

    [message] = overdraft_emails()
    assert message.to == [admin.user.email] and "Acme Floating" in message.body
    notices._enqueued.clear()  # another process: the task's own once-a-day record holds
    with django_capture_on_commit_callbacks(execute=True):
        api_client(token=extra.json()["token"]).delete("/api/v1/licenses/release")
        assert acquire(admin, license, "machine-0002").json()["overdraft"] is True
    assert len(rows(acme, "license.overdraft")) == 1 and len(overdraft_emails()) == 1


def test_the_rollup_keeps_the_overdraft_peak_and_time_for_the_true_up(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, overdraft_seats=2)
    acquire(member, license, "machine-0001")
    extra = [acquire(admin, license, f"machine-000{n}").json() for n in (2, 3)]
    assert [seat["overdraft"] for seat in extra] == [True, True]
    api_client(token=extra[0]["token"]).delete("/api/v1/licenses/release")
    drain_ledger_events(license)

    now = timezone.now()
    usage_rollup_license(
        license_id=license.id,
        tenant_id=acme.id,
        start=now - timedelta(hours=1),
        end=now + timedelta(seconds=1),
    )
    with tenant_scope(acme.id):
        hour = HourlyUsage.objects.get(license=license, period_start=floor_hour(now))
    assert (hour.peak_seats, hour.overdraft_peak) == (3, 2)
    assert hour.overdraft_seconds > 0

    usage = admin.client.get(
        "/api/v1/analytics/usage",
        {
            "granularity": "hour",
            "from": floor_hour(now).isoformat(),
            "to": (floor_hour(now) + timedelta(hours=1)).isoformat(),
        },
    )
    assert usage.status_code == 200, usage.content
    [period] = [
        p
        for item in usage.json()["licenses"]
        if item["license_id"] == str(license.id)
        for p in item["periods"]
    ]
    assert period["overdraft_peak"] == 2


def test_a_released_seat_lingers_for_its_holder_and_no_one_else(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, linger_seconds=120)
    mine = acquire(member, license, "machine-0001").json()

    released = api_client(token=mine["token"]).delete("/api/v1/licenses/release")
    assert released.status_code == 200
    linger_until = parse_datetime(released.json()["linger_until"])
    assert abs((linger_until - timezone.now()).total_seconds() - 120) < 5

    # Someone else, on any machine, is refused: the seat is still held.
    other = acquire(admin, license, "machine-0002")
    assert other.status_code == 409 and error_code(other) == "no_seats_available"
    # The released session takes no heartbeat and no second release.
    seat = api_client(token=mine["token"])
    assert error_code(seat.post("/api/v1/licenses/heartbeat")) == "session_not_found"
    assert error_code(seat.delete("/api/v1/licenses/release")) == "session_not_found"

    # The holder's application restarts: its acquire gets the seat back, on a new session.
    back = acquire(member, license, "machine-0001")
    assert back.status_code == 201 and back.json()["session_id"] != mine["session_id"]
    assert rows(acme, "lease.acquired")[-1].details.get("reclaimed") is True
    drain_ledger_events(license)
    [release_row] = rows(acme, "lease.released")
    assert parse_datetime(release_row.details["linger_until"]) == linger_until


def test_a_force_release_frees_a_lingering_seat_at_once(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, linger_seconds=600)
    mine = acquire(member, license, "machine-0001").json()
    api_client(token=mine["token"]).delete("/api/v1/licenses/release")

    lease_force_release(license=license, session_id=mine["session_id"], actor=admin.user)

    assert acquire(admin, license, "machine-0002").status_code == 201


def test_without_linger_a_release_frees_the_seat_and_says_so(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1)
    mine = acquire(member, license, "machine-0001").json()
    released = api_client(token=mine["token"]).delete("/api/v1/licenses/release")
    assert released.json()["linger_until"] is None
    assert acquire(admin, license, "machine-0002").status_code == 201


# --- idle timeout ---------------------------------------------------------------------------


def test_a_seat_idle_past_the_policys_timeout_ends_at_its_heartbeat(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, idle_timeout=900)
    mine = acquire(member, license, "machine-0001").json()
    seat = api_client(token=mine["token"])

    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200  # no report: never idle
    assert seat.post("/api/v1/licenses/heartbeat", {"idle_seconds": 899}, format="json").status_code == 200
    assert acquire(admin, license, "machine-0002").status_code == 409

    idle = seat.post("/api/v1/licenses/heartbeat", {"idle_seconds": 900}, format="json")
    assert idle.status_code == 403 and error_code(idle) == "idle_timeout"
    assert idle.json()["error"]["details"] == {"idle_seconds": 900, "idle_timeout": 900}
    assert acquire(admin, license, "machine-0002").status_code == 201  # the seat is free
    assert error_code(seat.post("/api/v1/licenses/heartbeat")) == "session_not_found"
    drain_ledger_events(license)
    [ended] = rows(acme, "lease.idle_released")
    assert ended.details["session_id"] == mine["session_id"] and ended.details["idle_seconds"] == 900


def test_without_an_idle_timeout_a_reported_idle_time_ends_nothing(ledger, member, acme):
    license = LicenseFactory(tenant=acme, max_seats=1)
    seat = api_client(token=acquire(member, license).json()["token"])
    assert seat.post("/api/v1/licenses/heartbeat", {"idle_seconds": 10**9}, format="json").status_code == 200


@pytest.mark.parametrize("body", [{"idle_seconds": -1}, {"idle_seconds": "60"}, {"idle_seconds": 1.5}, [1]])
def test_a_heartbeat_body_that_is_not_an_idle_time_is_400_and_changes_nothing(ledger, member, acme, body):
    license = LicenseFactory(tenant=acme, max_seats=1, idle_timeout=60)
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])
    refused = seat.post("/api/v1/licenses/heartbeat", body, format="json")
    assert refused.status_code == 400 and error_code(refused) == "invalid_request"
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200  # still live


# --- borrow limits --------------------------------------------------------------------------


def test_a_borrow_past_the_licenses_borrow_limit_is_409_and_changes_nothing(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=3, borrow_limit_hours=48, borrow_max_seats=1)
    first = acquire(member, license, "machine-0001").json()
    second = acquire(admin, license, "machine-0002").json()

    assert (
        api_client(token=first["token"])
        .post("/api/v1/licenses/borrow", {"hours": 8}, format="json")
        .status_code
        == 200
    )
    refused = api_client(token=second["token"]).post("/api/v1/licenses/borrow", {"hours": 8}, format="json")
    assert refused.status_code == 409 and error_code(refused) == "borrow_limit_reached"
    assert refused.json()["error"]["details"] == {"scope": "license", "limit": 1, "borrowed": 1}
    drain_ledger_events(license)
    assert len(rows(acme, "lease.borrowed")) == 1  # the refused borrow left nothing

    # Returning the borrowed seat early (its release) makes room.
    api_client(token=first["token"]).delete("/api/v1/licenses/release")
    again = api_client(token=second["token"]).post("/api/v1/licenses/borrow", {"hours": 8}, format="json")
    assert again.status_code == 200 and again.json()["borrowed_until"] is not None


def test_a_user_past_their_borrow_limit_is_409_while_others_still_borrow(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=3, borrow_limit_hours=48, borrow_max_per_user=1)
    mine = [acquire(member, license, f"machine-000{n}").json() for n in (1, 2)]
    theirs = acquire(admin, license, "machine-0003").json()
    borrow = lambda seat: api_client(token=seat["token"]).post(  # noqa: E731
        "/api/v1/licenses/borrow", {"hours": 8}, format="json"
    )
    assert borrow(mine[0]).status_code == 200
    refused = borrow(mine[1])
    assert refused.status_code == 409 and refused.json()["error"]["details"]["scope"] == "user"
    assert borrow(theirs).status_code == 200


# --- seat modes -----------------------------------------------------------------------------


def test_per_user_seats_a_users_machines_share_one_seat_up_to_their_limit(ledger, member, admin, acme):
    license = LicenseFactory(tenant=acme, max_seats=1, seat_mode="per_user", machines_per_user=2)
    desk = acquire(member, license, "machine-desk")
    laptop = acquire(member, license, "machine-laptop")
    assert desk.status_code == laptop.status_code == 201
    assert laptop.json()["seats"] == {"used": 1, "max": 1} and laptop.json()["overdraft"] is False

    third = acquire(member, license, "machine-third")
    assert third.status_code == 403 and error_code(third) == "fingerprint_not_allowed"
    assert third.json()["error"]["details"] == {"machines_per_user": 2}
    other = acquire(admin, license, "machine-other")
    assert other.status_code == 409 and error_code(other) == "no_seats_available"
    [status] = member.client.get("/api/v1/licenses/status", {"license_id": str(license.id)}).json()[
        "licenses"
    ]
    assert status["seats"] == {"used": 1, "max": 1}


def named(acme, **fields):
    from licenses.models import Policy, Product

    product, _ = Product.objects.get_or_create(slug="named-cad", defaults={"name": "CAD"})
    policy, _ = Policy.objects.get_or_create(
        slug="named-cad", defaults={"name": "Named CAD", "product": product, "seat_mode": "named", **fields}
    )
    return LicenseFactory(tenant=acme, max_seats=1, policy=policy)


def test_named_seats_only_an_assigned_user_acquires(ledger, member, admin, acme):
    from licenses.services import seat_assign

    license = named(acme)
    refused = acquire(member, license)
    assert refused.status_code == 403 and error_code(refused) == "not_assigned"
    assert rows(acme, "lease.denied")[-1].details["code"] == "not_assigned"

    seat_assign(license=license, user=member.user, actor=admin.user)
    assert acquire(member, license).status_code == 201
    assert error_code(acquire(admin, license)) == "not_assigned"
    [row] = rows(acme, "license.seat_assigned")
    assert row.details == {"user_id": str(member.user.pk), "email": member.user.email}


def test_named_seats_are_at_most_max_seats_and_a_taken_back_seat_cools_down(ledger, member, admin, acme):
    from core.errors import ApplicationError
    from licenses.services import seat_assign, seat_unassign

    license = named(acme, reassign_cooldown_hours=24)
    seat_assign(license=license, user=member.user, actor=admin.user)
    with pytest.raises(ApplicationError) as full:
        seat_assign(license=license, user=admin.user, actor=admin.user)
    assert full.value.code == "seats_all_assigned"

    seat = acquire(member, license).json()
    seat_unassign(license=license, user_id=member.user.pk, actor=admin.user)
    # The seat's lease ended with it; the seat cools down before another may have it.
    assert error_code(api_client(token=seat["token"]).post("/api/v1/licenses/heartbeat")) in {
        "session_not_found",
        "not_assigned",
    }
    with pytest.raises(ApplicationError) as cooling:
        seat_assign(license=license, user=admin.user, actor=admin.user)
    assert cooling.value.code == "seats_all_assigned" and cooling.value.details["cooling"] == 1
    assert len(rows(acme, "license.seat_unassigned")) == 1


def test_named_seats_without_a_cooldown_are_reassigned_at_once(ledger, member, admin, acme):
    from licenses.services import seat_assign, seat_unassign

    license = named(acme, reassign_cooldown_hours=0)
    seat_assign(license=license, user=member.user, actor=admin.user)
    seat_unassign(license=license, user_id=member.user.pk, actor=admin.user)
    seat_assign(license=license, user=admin.user, actor=admin.user)
    assert acquire(admin, license).status_code == 201


def test_a_lease_of_a_named_seat_taken_back_elsewhere_ends_at_its_heartbeat(ledger, member, admin, acme):
    """Another process took the seat back (its cache had the old row): the
    heartbeat that reads the new row ends the lease with not_assigned."""
    from licenses.selectors import license_cache_forget
    from licenses.services import seat_assign

    license = named(acme)
    seat_assign(license=license, user=member.user, actor=admin.user)
    seat = acquire(member, license).json()
    with tenant_scope(acme.id):
        from licenses.models import License

        License.objects.filter(pk=license.pk).update(assignments=[])
    license_cache_forget(instance=license)  # as LICENSE_CACHE_SECONDS would, later
    ended = api_client(token=seat["token"]).post("/api/v1/licenses/heartbeat")
    assert ended.status_code == 403 and error_code(ended) == "not_assigned"
    assert acquire(admin, license).status_code == 403  # still nobody's but the assigned
