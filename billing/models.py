"""The Stripe integration's own tables (issue 15).

`StripePrice` maps a Stripe Price id to the policy a license is made from
(edited in the admin). `StripeEvent` is every verified event received, by its
Stripe id, with what was done about it: the deduplication table (a replay
finds its row and changes nothing). `StripeCustomer` and `StripeSubscription`
remember which tenant a Stripe customer is and which license a subscription
pays for, with the state of a failed payment.

These are the operator's billing records, not a tenant's data: the webhook
(a system caller with no tenant) looks them up across tenants, and only the
operator console shows them. So they hold the tenant's and the license's ids
as plain columns rather than foreign keys to tenant-owned rows, and are not
under row-level security; the license itself is always read and changed in
its tenant's scope, through the licenses services.
"""

from __future__ import annotations

import uuid

from django.core.validators import MinValueValidator
from django.db import models

from licenses.models import Policy


class StripePrice(models.Model):
    price_id = models.CharField(max_length=255, unique=True, help_text="The Stripe Price id (`price_…`).")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+")
    seats_per_quantity = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Seats of the license per unit of the subscription's quantity.",
    )
    description = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_stripe_prices"
        ordering = ["price_id"]
        verbose_name = "Stripe price"

    def __str__(self) -> str:
        return f"{self.price_id} → {self.policy.slug}"


class EventOutcome(models.TextChoices):
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (a type this server does not act on)"
    UNKNOWN_PRICE = "unknown_price", "Unknown price (no license made)"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription", "Unknown subscription"
    INCOMPLETE = "incomplete", "Incomplete (a field the flow needs is missing)"
    # Of a subscription no checkout here has made yet: kept with its object and
    # applied when that checkout is processed (services.deferred_apply).
    DEFERRED = "deferred", "Deferred (waiting for its subscription's checkout)"
    # Older (Stripe's `created`) than the subscription's state already applied.
    STALE = "stale", "Stale (older than what was already applied)"
    AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment (a delayed payment method)"
    PAYMENT_FAILED = "payment_failed", "Payment failed (a delayed payment; no license made)"


class StripeEvent(models.Model):
    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True)
    # Stripe's `created` (the order events happened in; Stripe delivers in any order).
    created = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, choices=EventOutcome.choices)
    # What the event did or why not: ids of the tenant, license, price involved.
    detail = models.JSONField(default=dict, blank=True)
    # The Stripe subscription the event is about ("" when none), and, while it
    # is deferred, the event's object (`data.object`), to be applied later.
    subscription_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    payload = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "billing_stripe_events"
        ordering = ["-received_at"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.event_id} ({self.type}: {self.outcome})"


class StripeCustomer(models.Model):
    customer_id = models.CharField(max_length=255, unique=True)
    tenant_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_stripe_customers"
        verbose_name = "Stripe customer"

    def __str__(self) -> str:
        return f"{self.customer_id} → tenant {self.tenant_id}"


class StripeSubscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The Stripe Subscription id; a one-time checkout has none and is keyed
    # `checkout:<session id>` instead.
    subscription_id = models.CharField(max_length=255, unique=True)
    customer_id = models.CharField(max_length=255, db_index=True)
    tenant_id = models.UUIDField(db_index=True)
    license_id = models.UUIDField(unique=True)
    price_id = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField(default=1)
    # The first failed payment not yet followed by a paid invoice.
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    # True while the license is suspended because that payment's grace ran out
    # (so a paid invoice resumes it, and only a license suspended this way).
    suspended_for_payment = models.BooleanField(default=False)
    # Stripe's `created` of the last event applied to the subscription's items
    # (updated, deleted) and to its payments (invoice failed, paid): an event
    # older than the one its kind already applied is stale and changes nothing.
    subscription_event_at = models.DateTimeField(null=True, blank=True)
    invoice_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_stripe_subscriptions"
        ordering = ["-created_at"]
        verbose_name = "Stripe subscription"

    def __str__(self) -> str:
        return self.subscription_id
