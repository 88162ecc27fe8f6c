"""Products and policies over HTTP (issue 15, "It must show" 1, server side):
a license made from a policy with a catalog, with overrides, acquires with the
effective terms in its answer and its token; a change to the policy reaches the
licenses that follow it; the grace period after expiry; a trial; entitlements
are codes of the catalog. The SDK's maintenance check: sdk/tests/test_sdk_policy.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from licenses.models import License, Policy, Product
from licenses.services import license_create
from licenses.signing import license_token_verify
from licenses.tests.conftest import acquire, error_code
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def pro():
    product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro")
    return Policy.objects.create(
        product=product,
        name="Pro annual",
        slug="pro-annual",
        seats=4,
        lease_ttl=90,
        offline_grace=1000,
        borrow_limit_hours=0,
        max_machines=1,
        expiry_grace_days=3,
        maintenance_end=date(2027, 3, 31),
        max_version="3.1",
        entitlements={"cad": "CAD", "cam": "CAM", "render": "Rendering"},
    )


def made(tenant, policy, **fields):
    license, key = license_create(tenant=tenant, policy=policy, **fields)
    license.key = key
    return license


def test_a_license_from_a_policy_acquires_with_its_effective_terms(ledger, member, acme, pro):
    # Overrides: the offline grace and two of the catalog's codes; the rest is the policy's.
    license = made(acme, pro, offline_grace=500, entitlements=["cad", "cam"])
    assert (license.max_seats, license.lease_ttl, license.max_machines) == (4, None, None)

    response = acquire(member, license)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["heartbeat_interval"] == 90 // 3
    assert body["seats"] == {"used": 1, "max": 4}
    assert body["license"]["entitlements"] == {"cad": True, "cam": True}
    claims = license_token_verify(body["token"])
    assert claims["exp"] - claims["iat"] == 500
    assert claims["ent"] == {"cad": True, "cam": True}
    assert (claims["maint"], claims["ver_max"]) == ("2027-03-31", "3.1")
    assert "grace_until" not in claims  # perpetual: no grace to speak of

    # The policy's machine limit (1) binds the first machine and refuses a second.
    refused = acquire(member, license, fingerprint="machine-0002")
    assert refused.status_code == 403 and error_code(refused) == "fingerprint_not_allowed"
    assert refused.json()["error"]["details"] == {"max_machines": 1}


def test_a_change_to_the_policy_reaches_the_licenses_that_follow_it(ledger, member, acme, pro):
    follows = made(acme, pro)
    overrides = made(acme, pro, lease_ttl=300)
    pro.lease_ttl = 60
    pro.entitlements = {**pro.entitlements, "cloud": "Cloud"}
    pro.save()

    body = acquire(member, follows).json()
    assert body["heartbeat_interval"] == 20
    # No codes named: the whole catalog, as it is now.
    assert body["license"]["entitlements"] == {"cad": True, "cam": True, "render": True, "cloud": True}
    assert acquire(member, overrides).json()["heartbeat_interval"] == 100


def test_borrowing_follows_the_policys_limit(ledger, member, acme, pro):
    license = made(acme, pro)
    token = acquire(member, license).json()["token"]
    from coditect.personas import api_client

    borrow = api_client(token=token).post("/api/v1/licenses/borrow", {"hours": 1}, format="json")
    assert borrow.status_code == 403 and error_code(borrow) == "permission_denied"


def test_a_license_in_its_grace_period_acquires_with_grace_until_and_says_so(ledger, member, acme, pro):
    expired = timezone.now() - timedelta(days=1)
    license = made(acme, pro, expires_at=expired)
    grace_until = expired + timedelta(days=3)

    response = acquire(member, license)
    assert response.status_code == 201, response.content
    body = response.json()["license"]
    assert body["in_grace"] is True
    assert parse_datetime(body["grace_until"]) == grace_until
    claims = license_token_verify(response.json()["token"])
    assert claims["grace_until"] == int(grace_until.timestamp())
    assert claims["exp"] <= claims["grace_until"]

    status = member.client.get("/api/v1/licenses/status", {"license_id": str(license.id)}).json()
    (shown,) = status["licenses"]
    assert shown["state"] == "grace" and parse_datetime(shown["grace_until"]) == grace_until
    assert shown["policy"] == "pro-annual"


def test_past_its_grace_period_a_license_is_expired(ledger, member, acme, pro):
    expired = timezone.now() - timedelta(days=4)
    license = made(acme, pro, expires_at=expired)
    response = acquire(member, license)
    assert response.status_code == 403 and error_code(response) == "license_expired"
    details = response.json()["error"]["details"]
    assert parse_datetime(details["grace_until"]) == expired + timedelta(days=3)
    with tenant_scope(acme.id):
        assert License.objects.get(id=license.id).terms.is_expired()


def test_a_trial_policy_makes_licenses_that_expire_after_its_length(acme, pro):
    pro.trial_days = 14
    pro.save()
    before = timezone.now()
    license = made(acme, pro)
    assert before + timedelta(days=14) <= license.expires_at <= timezone.now() + timedelta(days=14)
    # A date given wins over the trial.
    assert made(acme, pro, expires_at=before + timedelta(days=2)).expires_at == before + timedelta(days=2)


@pytest.mark.parametrize(
    "entitlements, message",
    [
        (["cad", "cloud"], "Not in the catalog of policy pro-annual: cloud"),
        ({"cad": "yes"}, "codes of the policy's catalog"),
        ("cad", "a list of codes"),
    ],
)
def test_entitlements_are_codes_of_the_catalog(acme, pro, entitlements, message):
    with pytest.raises(ValueError, match=message):
        license_create(tenant=acme, policy=pro, entitlements=entitlements)
    with tenant_scope(acme.id):
        assert not License.objects.exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("entitlements", ["cad"], "JSON object of codes and names"),
        ("entitlements", {"Has Space": "x"}, "is not a code"),
        ("entitlements", {"cad": ""}, "needs a name"),
        ("max_version", "three", "dotted numbers"),
    ],
)
def test_a_policy_refuses_a_bad_catalog_or_version(pro, field, value, message):
    setattr(pro, field, value)
    with pytest.raises(ValidationError, match=message):
        pro.full_clean()


def test_a_license_made_without_a_policy_follows_the_default_one(acme):
    license, _ = license_create(tenant=acme, max_seats=1)
    assert license.policy.slug == "default"
    assert license.terms.lease_ttl == license.policy.lease_ttl
