"""Acquire, heartbeat, release, borrow and status over HTTP, on both ledgers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditLog
from coditect.personas import api_client
from licenses.signing import license_token_verify
from licenses.tests.conftest import acquire, drain_ledger_events, error_code, live_sessions
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def audit_actions(tenant) -> list[str]:
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.order_by("id").values_list("action", flat=True))


def test_acquire_answers_the_contract_and_a_verifiable_token(ledger, member, license):
    response = acquire(member, license)

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"session_id", "token", "expires_at", "heartbeat_interval", "seats", "license"} <= set(body)
    assert body["seats"] == {"used": 1, "max": 2}
    assert body["license"]["id"] == str(license.id)
    assert body["license"]["entitlements"] == {"pro": True}
    assert body["heartbeat_interval"] == license.terms.lease_ttl // 3
    claims = license_token_verify(body["token"])
    assert claims["sid"] == body["session_id"]
    assert claims["sub"] == str(license.id)
    assert claims["tid"] == str(license.tenant_id)
    assert claims["fp"] == "machine-0001"
    assert claims["ent"] == {"pro": True}
    assert live_sessions(ledger, license) == [body["session_id"]]
    assert "lease.acquired" in audit_actions(license.tenant)


def test_acquire_is_idempotent_per_fingerprint(ledger, member, license):
    first = acquire(member, license)
    again = acquire(member, license)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["session_id"] == first.json()["session_id"]
    assert again.json()["seats"]["used"] == 1
    assert live_sessions(ledger, license) == [first.json()["session_id"]]


def test_heartbeat_extends_and_release_frees_the_seat(ledger, member, license):
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])

    beat = seat.post("/api/v1/licenses/heartbeat")
    assert beat.status_code == 200, beat.content
    assert parse_datetime(beat.json()["expires_at"]) >= parse_datetime(checkout["expires_at"])

    released = seat.delete("/api/v1/licenses/release")
    assert released.status_code == 200
    assert released.json() == {"session_id": checkout["session_id"], "released": True, "linger_until": None}
    assert live_sessions(ledger, license) == []

    # Release is idempotent: the second frees nothing and says so.
    again = seat.delete("/api/v1/licenses/release")
    assert (again.status_code, error_code(again)) == (404, "session_not_found")
    after_release = seat.post("/api/v1/licenses/heartbeat")
    assert (after_release.status_code, error_code(after_release)) == (404, "session_not_found")
    drain_ledger_events(license)
    assert audit_actions(license.tenant)[-2:] == ["lease.released", "lease.heartbeat_rejected"]


def test_a_release_is_recorded_as_its_holders(ledger, member, license):
    """The audit row (and so the webhook's `user_id`) names the lease's holder
    when no one else acted: it was `null` for a client's own release."""
    checkout = acquire(member, license).json()
    assert api_client(token=checkout["token"]).delete("/api/v1/licenses/release").status_code == 200
    drain_ledger_events(license)
    with tenant_scope(license.tenant_id):
        row = AuditLog.objects.filter(action="lease.released").latest("id")
    assert str(row.user_id) == str(member.user.pk)


def test_borrow_keeps_the_seat_until_the_borrow_ends(ledger, member, license):
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])

    # 6 hours: shorter than the offline grace (24 h), so exp must be the borrow's end.
    response = seat.post("/api/v1/licenses/borrow", {"hours": 6}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    until = parse_datetime(body["borrowed_until"])
    claims = license_token_verify(body["token"])
    assert abs(claims["exp"] - until.timestamp()) <= 1
    assert parse_datetime(body["expires_at"]) >= until
    assert live_sessions(ledger, license) == [checkout["session_id"]]
    # Returning it early frees the seat.
    assert api_client(token=body["token"]).delete("/api/v1/licenses/release").status_code == 200
    assert live_sessions(ledger, license) == []


def test_a_borrow_an_hour_before_the_license_expires_ends_with_the_license(ledger, member, acme):
    """Invariant 11: no token, borrowed or not, outlives the license; nor does
    the borrowed seat."""
    license_ends = timezone.now() + timedelta(hours=1)
    license = LicenseFactory(tenant=acme, expires_at=license_ends, borrow_limit_hours=48)
    seat = api_client(token=acquire(member, license).json()["token"])

    response = seat.post("/api/v1/licenses/borrow", {"hours": 24}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert license_token_verify(body["token"])["exp"] == int(license_ends.timestamp())
    # The ledger keeps times to the millisecond (Redis) or the microsecond.
    for field in ("borrowed_until", "token_expires_at"):
        assert license_ends - timedelta(seconds=1) < parse_datetime(body[field]) <= license_ends, field
    assert parse_datetime(body["expires_at"]) <= license_ends, "the seat is not kept past the license"


def test_borrow_beyond_the_license_limit_is_refused(ledger, member, license):
    seat = api_client(token=acquire(member, license).json()["token"])
    response = seat.post("/api/v1/licenses/borrow", {"hours": 49}, format="json")
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    assert response.json()["error"]["details"] == {"max_hours": 48}


def test_status_shows_seats_and_leases_by_role(ledger, admin, member, license):
    acquire(admin, license, "admin-machine-1")
    acquire(member, license, "member-machine-1")

    as_admin = admin.client.get("/api/v1/licenses/status").json()["licenses"]
    as_member = member.client.get("/api/v1/licenses/status", headers={"X-License-Key": license.key}).json()[
        "licenses"
    ]
    by_id = member.client.get("/api/v1/licenses/status", {"license_id": str(license.id)}).json()["licenses"]
    assert by_id == as_member

    assert as_admin[0]["seats"] == as_member[0]["seats"] == {"used": 2, "max": 2}
    assert sorted(lease["fingerprint"] for lease in as_admin[0]["leases"]) == [
        "admin-machine-1",
        "member-machine-1",
    ]
    assert [lease["fingerprint"] for lease in as_member[0]["leases"]] == ["member-machine-1"]
    assert as_admin[0]["state"] == "active"


def test_lowering_max_seats_keeps_live_leases_and_refuses_new_ones(ledger, member, license):
    first = acquire(member, license, "machine-0001").json()
    acquire(member, license, "machine-0002")
    with tenant_scope(license.tenant_id):
        license.max_seats = 1
        license.save()

    refused = acquire(member, license, "machine-0003")
    assert (refused.status_code, error_code(refused)) == (409, "no_seats_available")
    assert len(live_sessions(ledger, license)) == 2
    assert api_client(token=first["token"]).post("/api/v1/licenses/heartbeat").status_code == 200

    api_client(token=first["token"]).delete("/api/v1/licenses/release")
    still_full = acquire(member, license, "machine-0003")
    assert (still_full.status_code, error_code(still_full)) == (409, "no_seats_available")


def test_suspending_a_license_ends_its_leases_at_their_next_heartbeat(ledger, member, license):
    seat = api_client(token=acquire(member, license).json()["token"])
    with tenant_scope(license.tenant_id):
        license.suspended = True
        license.save()

    response = seat.post("/api/v1/licenses/heartbeat")

    assert (response.status_code, error_code(response)) == (403, "license_suspended")
    assert live_sessions(ledger, license) == []


def test_keys_and_tokens_never_reach_the_logs(ledger, member, license, caplog):
    caplog.set_level("DEBUG")
    checkout = acquire(member, license).json()
    seat = api_client(token=checkout["token"])
    seat.post("/api/v1/licenses/heartbeat")
    seat.delete("/api/v1/licenses/release")
    seat.delete("/api/v1/licenses/release")  # an error path too
    member.client.post(
        "/api/v1/licenses/acquire", {"license_key": license.key + "X", "hardware_fingerprint": "machine-0001"}
    )
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    for secret in (license.key, checkout["token"], checkout["token"].split(".")[2]):
        assert secret not in logged


def as_documented(serializer_class, body: dict) -> None:
    """The answer is exactly what its documented serializer would have written
    (the token endpoints build plain dicts for speed)."""
    import json

    from rest_framework.renderers import JSONRenderer

    parsed = serializer_class(data=body)
    assert parsed.is_valid(), parsed.errors
    assert set(body) == set(parsed.fields)
    assert json.loads(JSONRenderer().render(serializer_class(parsed.validated_data).data)) == body


def test_the_seat_answers_are_what_the_schema_documents(ledger, member, license):
    from licenses.apis import CheckoutSerializer, LicenseHeartbeatApi, LicenseReleaseApi

    checkout = acquire(member, license)
    as_documented(CheckoutSerializer, checkout.json())
    assert checkout.json()["borrowed_until"] is None
    as_documented(CheckoutSerializer, acquire(member, license).json())  # the existing lease
    seat = api_client(token=checkout.json()["token"])
    as_documented(
        LicenseHeartbeatApi.HeartbeatOutputSerializer, seat.post("/api/v1/licenses/heartbeat").json()
    )
    borrowed = seat.post("/api/v1/licenses/borrow", {"hours": 6}, format="json").json()
    as_documented(CheckoutSerializer, borrowed)
    assert borrowed["borrowed_until"] is not None
    as_documented(LicenseReleaseApi.ReleaseOutputSerializer, seat.delete("/api/v1/licenses/release").json())


def test_the_checkout_answer_builder_writes_what_its_serializer_documents(ledger, member, license):
    """`checkout_answer` is the one builder of the acquire and borrow answer;
    what it writes for a fresh and a borrowed lease is CheckoutSerializer's shape."""
    import json

    from rest_framework.renderers import JSONRenderer

    from licenses.apis import CheckoutSerializer, checkout_answer
    from licenses.leases import lease_acquire, lease_borrow
    from licenses.signing import license_token_verify

    with tenant_scope(license.tenant_id):
        fresh = lease_acquire(user=member.user, license_key=license.key, fingerprint="machine-0001")
    borrowed = lease_borrow(claims=license_token_verify(fresh.token), hours=2)
    for checkout in (fresh, borrowed):
        as_documented(CheckoutSerializer, json.loads(JSONRenderer().render(checkout_answer(checkout))))
    assert checkout_answer(borrowed)["borrowed_until"] == borrowed.lease.borrowed_until


def test_an_event_that_ends_a_lease_carries_exactly_the_lease_end_fields(ledger, member, license):
    """The producer writes the names the rollups read (audit.events.LEASE_END_FIELDS)."""
    from audit.events import LEASE_END_FIELDS, LEDGER_EVENT_FIELDS, Detail, Event

    token = acquire(member, license).json()["token"]
    assert api_client(token=token).delete("/api/v1/licenses/release").status_code == 200
    drain_ledger_events(license)
    with tenant_scope(license.tenant_id):
        released = AuditLog.objects.get(action=Event.LEASE_RELEASED)
    # A ledger that kept the event with its change adds its id and its time;
    # `overdraft` is there only for an overdraft seat.
    assert set(released.details) == (LEASE_END_FIELDS - {Detail.OVERDRAFT}) | (
        LEDGER_EVENT_FIELDS if ledger.records_events else set()
    )
    assert released.details["user_id"] == str(member.user.pk)
