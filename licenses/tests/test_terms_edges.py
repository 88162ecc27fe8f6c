"""Effective terms at their edges (found by the attack pass on issue 15): a
far-future expiry with a grace, a policy given a grace later, days past a
century, and a code licenses name leaving a catalog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create
from coditect.personas import tenant_member
from licenses.models import MAX_POLICY_DAYS, License, Policy, Product
from licenses.services import license_create
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded]

BASE = "/api/v1/provisioning"


def key_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def graceful(committed_db):
    with operator_scope():
        product = Product.objects.create(name="P", slug="p-attack")
        return Policy.objects.create(
            product=product, name="Grace", slug="grace", seats=3, expiry_grace_days=30
        )


def test_a_far_future_expiry_on_a_policy_with_a_grace_is_not_a_500(acme, graceful):
    """`9999-12-31` is a common way to say "never"; the grace's end is past what a datetime holds."""
    _, key = api_key_create(name="backend")
    response = key_client(key).post(
        f"{BASE}/licenses",
        {"tenant_id": str(acme.id), "policy": "grace", "expires_at": "9999-12-31T12:00:00Z"},
        format="json",
    )
    assert response.status_code in (201, 400), response.status_code


def test_a_license_whose_policy_gains_a_grace_still_reads_and_acquires(acme, graceful):
    """A license made to run to 9999-12-31 on a policy without a grace; the
    operator then gives the policy a grace in the admin: its tenant's license
    list, the license and every acquire of it must not turn into 500s."""
    _, key = api_key_create(name="backend")
    far = datetime(9999, 12, 31, 12, tzinfo=UTC)
    with tenant_scope(acme.id):
        license, license_key = license_create(tenant=acme, expires_at=far)  # the default policy, no grace
    with operator_scope():
        License.unscoped.filter(pk=license.pk).update(policy=graceful)
    acquired = tenant_member(acme).client.post(
        "/api/v1/licenses/acquire",
        {"license_key": license_key, "hardware_fingerprint": "machine-0001"},
        format="json",
    )
    listed = key_client(key).get(f"{BASE}/licenses?tenant_id={acme.id}")
    assert (acquired.status_code, listed.status_code) == (201, 200)


def test_a_policy_gives_at_most_a_century_of_trial_or_grace(committed_db):
    policy = Policy(
        name="Long", slug="long", expiry_grace_days=MAX_POLICY_DAYS + 1, trial_days=MAX_POLICY_DAYS + 1
    )
    with pytest.raises(ValidationError) as refused:
        policy.full_clean(exclude=["product"])
    assert {"expiry_grace_days", "trial_days"} <= set(refused.value.message_dict)


def test_a_code_named_by_a_license_cannot_leave_its_policys_catalog(acme):
    """A license's entitlements are codes of its policy's catalog: a code that
    live licenses name is refused out of the catalog until they drop it (a
    license that named it kept granting it, one that inherited did not)."""
    with operator_scope():
        product = Product.objects.create(name="P", slug="p-retire")
        policy = Policy.objects.create(
            product=product, name="Pro", slug="pro-retire", entitlements={"pro": "Pro", "cloud": "Cloud"}
        )
    with tenant_scope(acme.id):
        named, _ = license_create(tenant=acme, policy=policy, entitlements=["pro", "cloud"])
        license_create(tenant=acme, policy=policy)  # inherits the catalog
    with operator_scope():
        policy.entitlements = {"cloud": "Cloud"}
        with pytest.raises(ValidationError) as refused:
            policy.full_clean()
        assert "pro" in refused.value.message_dict["entitlements"][0]
        License.unscoped.filter(pk=named.pk).update(entitlements={"cloud": True})
        policy.full_clean()
        policy.save()
