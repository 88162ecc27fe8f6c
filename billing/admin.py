"""The Stripe integration in the operator console: prices mapped to policies
(edited here), and the records the webhook keeps (read only)."""

from __future__ import annotations

from django.contrib import admin

from billing.models import StripeCustomer, StripeEvent, StripePrice, StripeSubscription


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


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnly):
    list_display = ("event_id", "type", "outcome", "livemode", "received_at")
    list_filter = ("outcome", "type", "livemode")
    search_fields = ("event_id",)


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
