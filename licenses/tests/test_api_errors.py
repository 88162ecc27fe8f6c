"""Every error code of DESIGN.md that the license API can give, each produced
by a request, each in the one error shape, and none of them changing the ledger.
(rate_limited is produced in accounts' rate-limit tests.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from coditect.personas import api_client
from licenses.ledger import get_seat_ledger
from licenses.tests.conftest import acquire, error_code, live_sessions
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def unchanged(ledger, license):
    """Assert the ledger holds the same leases after the test as before it."""
    acquire_before = live_sessions(ledger, license)
    yield
    assert live_sessions(ledger, license) == acquire_before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"license_key": "CDT-X"},
        {"license_key": "CDT-X", "hardware_fingerprint": "short"},
        {"license_key": "CDT-X", "hardware_fingerprint": "has spaces in it"},
        {"license_key": "x" * 65, "hardware_fingerprint": "machine-0001"},
        {"license_key": "CDT-X", "hardware_fingerprint": "machine-0001", "client_info": "nope"},
        {"license_key": "CDT-X", "hardware_fingerprint": "machine-0001", "client_info": {"\u0000": "x"}},
        {"license_key": "CDT-X", "hardware_fingerprint": "machine-0001", "client_info": {"k" * 65: "x"}},
    ],
)
def test_bad_acquire_input_is_invalid_request(ledger, member, license, unchanged, body):
    response = member.client.post("/api/v1/licenses/acquire", body, format="json")
    assert (response.status_code, error_code(response)) == (400, "invalid_request")


def test_malformed_json_is_invalid_request(ledger, member, license, unchanged):
    response = member.client.post("/api/v1/licenses/acquire", "{not json", content_type="application/json")
    assert (response.status_code, error_code(response)) == (400, "invalid_request")


def test_acquire_without_a_user_token_is_not_authenticated(ledger, license, unchanged):
    response = api_client().post(
        "/api/v1/licenses/acquire",
        {"license_key": license.key, "hardware_fingerprint": "machine-0001"},
        format="json",
    )
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_heartbeat_with_a_bad_license_token_is_not_authenticated(ledger, license, unchanged, token):
    client = api_client(token=token)
    response = client.post("/api/v1/licenses/heartbeat")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


def test_a_user_token_is_not_a_license_token(ledger, member, license, unchanged):
    response = member.client.post("/api/v1/licenses/heartbeat")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


def test_read_only_members_cannot_take_seats(ledger, viewer, license, unchanged):
    response = acquire(viewer, license)
    assert (response.status_code, error_code(response)) == (403, "permission_denied")


def test_borrowing_a_license_that_forbids_it_is_permission_denied(ledger, member, acme):
    license = LicenseFactory(tenant=acme, borrow_limit_hours=0)
    seat = api_client(token=acquire(member, license).json()["token"])
    before = live_sessions(ledger, license)
    response = seat.post("/api/v1/licenses/borrow", {"hours": 1}, format="json")
    assert (response.status_code, error_code(response)) == (403, "permission_denied")
    assert live_sessions(ledger, license) == before


def test_an_unknown_key_and_another_tenants_key_look_the_same(ledger, member, license, globex, unchanged):
    theirs = LicenseFactory(tenant=globex)
    unknown = member.client.post(
        "/api/v1/licenses/acquire",
        {"license_key": "CDT-NOPE", "hardware_fingerprint": "machine-0001"},
        format="json",
    )
    foreign = acquire(member, theirs)
    assert (unknown.status_code, error_code(unknown)) == (404, "license_not_found")
    assert foreign.status_code == 404
    assert foreign.json() == unknown.json()
    assert live_sessions(get_seat_ledger(), theirs) == []


def test_an_expired_license_is_refused(ledger, member, acme):
    license = LicenseFactory(tenant=acme, expires_at=timezone.now() - timedelta(days=1))
    response = acquire(member, license)
    assert (response.status_code, error_code(response)) == (403, "license_expired")
    assert live_sessions(ledger, license) == []


def test_a_suspended_license_is_refused(ledger, member, acme):
    license = LicenseFactory(tenant=acme, suspended=True)
    response = acquire(member, license)
    assert (response.status_code, error_code(response)) == (403, "license_suspended")
    assert live_sessions(ledger, license) == []


def test_a_license_both_suspended_and_expired_is_suspended_to_status_acquire_and_heartbeat(
    ledger, admin, member, acme
):
    """One check of a license's state (licenses.selectors.license_state) speaks
    for the status answer and for every refusal: suspension is named first."""
    from licenses.selectors import license_state

    license = LicenseFactory(tenant=acme)
    token = acquire(member, license).json()["token"]
    license.suspended = True
    license.expires_at = timezone.now() - timedelta(days=1)
    with tenant_scope(acme.id):
        license.save()

    assert license_state(license) == "suspended"
    [status] = admin.client.get("/api/v1/licenses/status").json()["licenses"]
    assert status["state"] == "suspended"
    refused = acquire(member, license, "machine-0002")
    assert (refused.status_code, error_code(refused)) == (403, "license_suspended")
    ended = api_client(token=token).post("/api/v1/licenses/heartbeat")
    assert (ended.status_code, error_code(ended)) == (403, "license_suspended")
    assert live_sessions(ledger, license) == []


def test_a_node_locked_license_refuses_other_machines(ledger, member, acme):
    license = LicenseFactory(tenant=acme, hardware_fingerprints=["machine-allowed"])
    refused = acquire(member, license, "machine-other")
    assert (refused.status_code, error_code(refused)) == (403, "fingerprint_not_allowed")
    assert live_sessions(ledger, license) == []
    assert acquire(member, license, "machine-allowed").status_code == 201


def test_a_machine_limit_binds_new_machines_until_full(ledger, member, acme):
    license = LicenseFactory(tenant=acme, max_machines=2, max_seats=5)
    assert acquire(member, license, "machine-one").status_code == 201
    assert acquire(member, license, "machine-two").status_code == 201
    refused = acquire(member, license, "machine-three")
    assert (refused.status_code, error_code(refused)) == (403, "fingerprint_not_allowed")
    assert len(live_sessions(ledger, license)) == 2
    with tenant_scope(acme.id):
        license.refresh_from_db()
    assert license.hardware_fingerprints == ["machine-one", "machine-two"]


def test_a_full_license_is_no_seats_available(ledger, member, license):
    acquire(member, license, "machine-0001")
    acquire(member, license, "machine-0002")
    before = live_sessions(ledger, license)
    response = acquire(member, license, "machine-0003")
    assert (response.status_code, error_code(response)) == (409, "no_seats_available")
    assert response.json()["error"]["details"] == {"used": 2, "max": 2}
    assert live_sessions(ledger, license) == before


def test_heartbeat_of_a_released_session_is_session_not_found(ledger, member, license):
    seat = api_client(token=acquire(member, license).json()["token"])
    seat.delete("/api/v1/licenses/release")
    before = live_sessions(ledger, license)
    response = seat.post("/api/v1/licenses/heartbeat")
    assert (response.status_code, error_code(response)) == (404, "session_not_found")
    assert live_sessions(ledger, license) == before


@pytest.mark.parametrize("license_id", ["abc", "1234", "not-a-uuid-at-all"])
def test_status_of_a_malformed_license_id_is_invalid_request(ledger, member, license_id):
    response = member.client.get("/api/v1/licenses/status", {"license_id": license_id})
    assert (response.status_code, error_code(response)) == (400, "invalid_request")


def test_status_of_another_tenants_license_id_is_license_not_found(ledger, member, globex):
    theirs = LicenseFactory(tenant=globex)
    response = member.client.get("/api/v1/licenses/status", {"license_id": str(theirs.id)})
    assert (response.status_code, error_code(response)) == (404, "license_not_found")
