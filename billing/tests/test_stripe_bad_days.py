"""Stripe sequences that once left a license wrong (the attack pass on issue
15): a cancelled subscription revived by an old invoice paid late, an older
update arriving after a newer one, a checkout of a customer whose tenant was
deleted, and a plan change whose catalog lacks the license's codes. Events are
signed with the test secret, so Stripe's own verification runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invite, Role
from accounts.tests.factories import UserFactory
from billing.models import StripeCustomer
from billing.services import payment_grace_sweep
from billing.tests import test_stripe_webhook as stripe_events
from billing.tests.test_stripe_webhook import (
    checkout,
    event,
    invoice,
    license_of,
    link,
    post,
    subscription_object,
)
from licenses.models import License
from licenses.selectors import license_state
from licenses.services import license_update, tenant_delete
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope

pytestmark = [pytest.mark.embedded]

# The Stripe webhook tests' fixtures (the secret, the prices, Acme), shared.
stripe_settings = pytest.fixture(autouse=True)(stripe_events.stripe_settings.__wrapped__)
prices = pytest.fixture(stripe_events.prices.__wrapped__)
acme = pytest.fixture(stripe_events.acme.__wrapped__)


def ended_an_hour_ago() -> int:
    return int((timezone.now() - timedelta(hours=1)).timestamp())


def test_a_cancelled_subscription_is_not_revived_by_an_old_invoice_paid_late(api, prices):
    """Payment fails, the grace passes (suspended), the subscription is
    cancelled after its period (it ends now), then the old invoice is paid
    after all: the license stays ended, and the grace sweep leaves it so."""
    post(api, event("checkout.session.completed", checkout()))
    assert post(api, event("invoice.payment_failed", invoice())).json()["outcome"] == "processed"
    assert payment_grace_sweep(now=timezone.now() + timedelta(days=8)) == 1
    deleted = post(
        api, event("customer.subscription.deleted", subscription_object(period_end=ended_an_hour_ago()))
    )
    assert deleted.json()["outcome"] == "processed"

    post(api, event("invoice.paid", invoice()))
    assert license_of().suspended is True
    assert payment_grace_sweep(now=timezone.now() + timedelta(days=30)) == 0
    assert license_of().suspended is True


def test_a_cancellation_during_the_payment_grace_is_not_undone_by_the_sweep_and_a_late_payment(api, prices):
    post(api, event("checkout.session.completed", checkout()))
    post(api, event("invoice.payment_failed", invoice()))
    post(api, event("customer.subscription.deleted", subscription_object(period_end=ended_an_hour_ago())))
    assert payment_grace_sweep(now=timezone.now() + timedelta(days=8)) == 0
    post(api, event("invoice.paid", invoice()))
    assert license_of().suspended is True and license_state(license_of()) != "active"


def test_an_older_subscription_update_arriving_late_does_not_undo_a_newer_one(api, prices):
    """Stripe does not deliver events in order: each carries `created`."""
    post(api, event("checkout.session.completed", checkout(quantity=3)))
    newer = json.loads(event("customer.subscription.updated", subscription_object(quantity=10)))
    newer["created"] = 2_000_000_000
    older = json.loads(event("customer.subscription.updated", subscription_object(quantity=2)))
    older["created"] = 1_999_999_000
    post(api, json.dumps(newer))
    assert post(api, json.dumps(older)).json()["outcome"] == "stale"
    assert license_of().max_seats == 10


def test_a_checkout_of_a_customer_whose_tenant_was_deleted_makes_a_new_tenant(api, prices, acme):
    StripeCustomer.objects.create(customer_id="cus_1", tenant_id=acme.id)
    tenant_delete(tenant=acme)
    assert post(api, event("checkout.session.completed", checkout())).json()["outcome"] == "processed"
    with operator_scope():
        assert not License.unscoped.filter(tenant_id=acme.id, deleted_at__isnull=True).exists()
        assert StripeCustomer.objects.get(customer_id="cus_1").tenant_id == link().tenant_id != acme.id


def test_a_plan_change_grants_the_new_plans_catalog(api, prices):
    """The license named its own codes under the old plan; the new plan's
    catalog lacks one. After the move it grants what the new plan sells."""
    team, studio = prices["team"].policy, prices["studio"].policy
    team.entitlements = {"cad": "CAD", "render": "Render"}
    team.save(update_fields=["entitlements"])
    studio.entitlements = {"cad": "CAD", "cloud": "Cloud"}
    studio.save(update_fields=["entitlements"])
    post(api, event("checkout.session.completed", checkout()))
    license = license_of()
    with tenant_scope(license.tenant_id):
        license.entitlements = {"cad": True, "render": True}
        license_update(license=license, fields=["entitlements"])

    post(api, event("customer.subscription.updated", subscription_object(price="price_studio", quantity=1)))
    moved = license_of()
    assert moved.policy_id == studio.id
    assert moved.terms.entitlements == {"cad": True, "cloud": True}


def test_a_returning_buyer_under_a_new_stripe_customer_gets_the_license_in_their_tenant(api, prices, acme):
    """Stripe makes a customer per checkout unless the vendor passes one: a
    buyer whose email has an account here gets the license in that account's
    tenant, not a new tenant with an invite that email could never accept."""
    buyer = UserFactory(tenant=acme, email="buyer@initech.test", role=Role.TENANT_ADMIN)
    with operator_scope():
        tenants_before = Tenant.objects.count()
    session = checkout(customer="cus_new", subscription="sub_again")
    assert post(api, event("checkout.session.completed", session)).json()["outcome"] == "processed"
    assert link("sub_again").tenant_id == buyer.tenant_id == acme.id
    with operator_scope():
        assert Tenant.objects.count() == tenants_before
        assert StripeCustomer.objects.get(customer_id="cus_new").tenant_id == acme.id
        assert Invite.unscoped.count() == 0


@pytest.mark.parametrize("quantity", ["abc", "0", "-3", "2.5"])
def test_a_quantity_that_is_not_a_whole_number_of_seats_sells_nothing(api, prices, quantity):
    response = post(api, event("checkout.session.completed", checkout(quantity=quantity)))
    assert response.status_code == 200 and response.json()["outcome"] == "incomplete"
    with operator_scope():
        assert not License.unscoped.filter(name__startswith="Stripe sub_1").exists()
