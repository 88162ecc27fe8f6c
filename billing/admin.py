"""The Stripe integration in the operator console: prices mapped to policies
(edited here), and the records the webhook keeps (read only)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from billing.models import EventOutcome, StripeCustomer, StripeEvent, StripePrice, StripeSubscription

# A deferred event waits for its subscription's checkout; Stripe delivers within
# seconds and retries a failed delivery for three days, so one still waiting a
# day later points at a checkout that made nothing here (an unknown price, a
# checkout made in another account) and wants an operator's look.
OVERDUE = timedelta(days=1)


@admin.register(StripePrice)
class StripePriceAdmin(admin.ModelAdmin):
    list_display = ("price_id", "policy", "seats_per_quantity", "description", "updated_at")
    search_fields = ("price_id", "description", "policy__slug")
    list_select_related = ("policy",)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WaitingFilter(admin.SimpleListFilter):
    title = "waiting for a checkout"
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("overdue", "Deferred over a day"), ("any", "Deferred")]

    def queryset(self, request, queryset):
        if self.value() not in ("overdue", "any"):
            return queryset
        queryset = queryset.filter(outcome=EventOutcome.DEFERRED)
        if self.value() == "overdue":
            queryset = queryset.filter(received_at__lte=timezone.now() - OVERDUE)
        return queryset


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnly):
    list_display = ("event_id", "type", "outcome", "subscription_id", "created", "received_at", "livemode")
    list_filter = (WaitingFilter, "outcome", "type", "livemode")
    search_fields = ("event_id", "subscription_id")


@admin.register(StripeCustomer)
class StripeCustomerAdmin(_ReadOnly):
    list_display = ("customer_id", "tenant_id", "created_at")
    search_fields = ("customer_id", "tenant_id")


@admin.register(StripeSubscription)
class StripeSubscriptionAdmin(_ReadOnly):
    list_display = (
        "subscription_id",
        "customer_id",
        "license_id",
        "price_id",
        "quantity",
        "payment_failed_at",
        "suspended_for_payment",
    )
    list_filter = ("suspended_for_payment",)
    search_fields = ("subscription_id", "customer_id", "license_id", "tenant_id")
