"""Attacks on tenant isolation through the seat-ledger gateway and the
license-token endpoints in front of it: another tenant's caller, a token of
the wrong kind, a token signed by a key that is not ours."""

from __future__ import annotations

import pytest

from coditect.personas import access_token, api_client, tenant_admin
from core.keyring import LocalSigner, jws_sign
from licenses.ledger import SessionNotFound
from licenses.ledger.gateway import seat_ledger
from licenses.signing import license_token_verify, signing_keys
from licenses.tests.conftest import LEDGERS, acquire, error_code, live_sessions
from licenses.tests.factories import LicenseFactory
from licenses.tests.signing_helpers import ed25519_key
from tenants.scope import ScopeError, tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def globex_license(globex):
    return LicenseFactory(tenant=globex, max_seats=2)


def acme_seat(gateway, license, fingerprint="acme-machine"):
    return gateway.acquire(
        license_id=license.id,
        tenant_id=license.tenant_id,
        max_seats=license.max_seats,
        fingerprint=fingerprint,
        user_id=None,
        ttl=60,
    ).lease


def test_a_caller_in_one_tenants_scope_cannot_reach_another_tenants_seats_through_the_gateway(
    settings, license, globex_license
):
    """Globex's code naming Acme's license under Globex's own tenant finds no
    lease, ends none, and Acme's seat is still held."""
    settings.SEAT_LEDGER = "database"
    gateway = seat_ledger("database")
    lease = acme_seat(gateway, license)

    with tenant_scope(globex_license.tenant_id):
        assert gateway.live_leases(license_id=license.id, tenant_id=globex_license.tenant_id) == []
        assert gateway.used(license_id=license.id, tenant_id=globex_license.tenant_id) == 0
    with pytest.raises(SessionNotFound), tenant_scope(globex_license.tenant_id):
        gateway.release(
            license_id=license.id, tenant_id=globex_license.tenant_id, session_id=lease.session_id
        )
    with pytest.raises(SessionNotFound), tenant_scope(globex_license.tenant_id):
        gateway.heartbeat(
            license_id=license.id, tenant_id=globex_license.tenant_id, session_id=lease.session_id, ttl=600
        )
    assert live_sessions(gateway.ledger, license) == [lease.session_id]


@pytest.mark.parametrize("backend", LEDGERS)
def test_the_gateway_refuses_to_switch_a_callers_tenant_scope_to_another_tenant(
    settings, backend, license, globex_license
):
    settings.SEAT_LEDGER = backend
    gateway = seat_ledger(backend)
    acme_seat(gateway, license)
    with tenant_scope(globex_license.tenant_id), pytest.raises(ScopeError):
        gateway.live_leases(license_id=license.id, tenant_id=license.tenant_id)


def test_an_outsiders_license_token_never_heartbeats_or_releases_another_tenants_session(
    ledger, member, license, globex_license
):
    """Globex's admin holds a real token for a Globex seat; with it they can
    touch their own session only, never Acme's."""
    acme = acquire(member, license).json()
    outsider = tenant_admin(globex_license.tenant)
    theirs = acquire(outsider, globex_license).json()
    seat = api_client(token=theirs["token"])

    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200
    assert seat.delete("/api/v1/licenses/release").status_code == 200
    assert live_sessions(ledger, license) == [acme["session_id"]]
    assert license_token_verify(theirs["token"])["tid"] == str(globex_license.tenant_id)


def test_a_token_of_the_wrong_kind_opens_no_door(ledger, member, license):
    """An access token is no license token and a license token no access token,
    though both are JWS signed by this server."""
    checkout = acquire(member, license).json()
    as_user = api_client(token=access_token(member.user))
    assert error_code(as_user.post("/api/v1/licenses/heartbeat")) == "not_authenticated"
    assert error_code(as_user.delete("/api/v1/licenses/release")) == "not_authenticated"

    as_seat = api_client(token=checkout["token"])
    refused = as_seat.post(
        "/api/v1/licenses/acquire",
        {"license_key": license.key, "hardware_fingerprint": "other-machine"},
        format="json",
    )
    assert (refused.status_code, error_code(refused)) == (401, "not_authenticated")
    assert as_seat.get("/api/v1/licenses/status").status_code == 401
    assert live_sessions(ledger, license) == [checkout["session_id"]]


def test_a_license_token_signed_by_another_key_under_our_kid_is_refused(ledger, member, license):
    """The forger copies our kid and claims from a real token, and signs with a
    key of their own."""
    checkout = acquire(member, license).json()
    claims = license_token_verify(checkout["token"])
    ours = signing_keys().signer.key
    forger = LocalSigner(private_key=ed25519_key(7), key=ours)  # our kid in the header, their signature
    forged = jws_sign({**claims, "exp": claims["exp"] + 3600}, forger)

    response = api_client(token=forged).post("/api/v1/licenses/heartbeat")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")
    released = api_client(token=forged).delete("/api/v1/licenses/release")
    assert released.status_code == 401
    assert live_sessions(ledger, license) == [checkout["session_id"]]
