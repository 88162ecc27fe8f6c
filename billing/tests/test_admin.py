"""The console's Stripe pages: prices are added and changed there (audited, as
every console change is); the webhook's records are read only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from billing.models import StripeEvent, StripePrice
from licenses.models import Policy
from licenses.tests import test_admin
from tenants.scope import operator_scope

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console


def test_an_operator_maps_a_price_to_a_policy_and_it_is_audited(console):
    policy = Policy.default()
    response = console.post(
        reverse("admin:billing_stripeprice_add"),
        {"price_id": "price_team", "policy": str(policy.pk), "seats_per_quantity": "5", "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    price = StripePrice.objects.get(price_id="price_team")
    assert (price.policy_id, price.seats_per_quantity) == (policy.pk, 5)
    with operator_scope():
        added = AuditLog.objects.filter(action="admin.added", target_type="billing.stripeprice").count()
    assert added == 1

    refused = console.post(
        reverse("admin:billing_stripeprice_add"),
        {"price_id": "price_zero", "policy": str(policy.pk), "seats_per_quantity": "0", "_save": "Save"},
    )
    assert refused.status_code == 200 and not StripePrice.objects.filter(price_id="price_zero").exists()


def test_the_webhooks_records_are_listed_and_read_only(console):
    StripeEvent.objects.create(event_id="evt_1", type="invoice.paid", outcome="processed")
    for name in ("stripeevent", "stripecustomer", "stripesubscription", "stripeprice"):
        assert console.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
    assert console.get(reverse("admin:billing_stripeevent_add")).status_code == 403
    row = StripeEvent.objects.get()
    assert (
        console.post(reverse("admin:billing_stripeevent_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert StripeEvent.objects.filter(pk=row.pk).exists()


def test_events_still_deferred_a_day_later_are_found_in_the_event_list(console):
    waiting = StripeEvent.objects.create(
        event_id="evt_waiting", type="invoice.paid", outcome="deferred", subscription_id="sub_lost"
    )
    StripeEvent.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(days=1, hours=1))
    StripeEvent.objects.create(
        event_id="evt_just_now", type="invoice.paid", outcome="deferred", subscription_id="sub_soon"
    )
    StripeEvent.objects.create(event_id="evt_done", type="invoice.paid", outcome="processed")
    url = reverse("admin:billing_stripeevent_changelist")
    overdue = console.get(url, {"waiting": "overdue"}).content.decode()
    assert "evt_waiting" in overdue and "sub_lost" in overdue
    assert "evt_just_now" not in overdue and "evt_done" not in overdue
    deferred = console.get(url, {"waiting": "any"}).content.decode()
    assert "evt_waiting" in deferred and "evt_just_now" in deferred and "evt_done" not in deferred
    assert "evt_waiting" in console.get(url, {"q": "sub_lost"}).content.decode()
