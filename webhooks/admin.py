"""Admin pages for webhooks: every tenant's endpoints and the operator-wide
ones (no tenant: they hear every tenant's events), and the delivery log with
redelivery. Changes go through webhooks.services, which audits them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from core.errors import ApplicationError
from webhooks import services
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import Delivery, DeliveryAttempt, Endpoint


class EndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in sorted(WEBHOOK_EVENTS)], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Endpoint
        fields = ["tenant", "url", "description", "event_types", "enabled"]
        help_texts = {"tenant": "Empty: an operator-wide endpoint, which hears every tenant's events."}

    def clean(self):
        data = super().clean()
        if data.get("url") and data.get("event_types"):
            try:
                services.endpoint_validate(url=data["url"], event_types=data["event_types"])
            except ApplicationError as error:
                raise forms.ValidationError(error.message) from None
        if self.instance._state.adding:
            tenant = data.get("tenant")
            try:
                services.endpoint_limit_check(tenant_id=tenant.pk if tenant else None)
            except ApplicationError as error:
                raise forms.ValidationError(error.message) from None
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "tenant", "enabled", "failure_count", "disabled_at", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    readonly_fields = ["failure_count", "disabled_at", "disabled_reason", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # An endpoint stays with the tenant it was made for.
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            values = {name: data[name] for name in form.changed_data if name in services.EDITABLE}
            services.endpoint_update(
                endpoint=Endpoint.objects.get(pk=obj.pk), values=values, actor=request.user
            )
            return
        endpoint = services.endpoint_create(
            tenant_id=data["tenant"].pk if data.get("tenant") else None,
            url=data["url"],
            event_types=list(data["event_types"]),
            description=data.get("description", ""),
            actor=request.user,
        )
        obj.pk = endpoint.pk
        messages.warning(request, f"The endpoint's signing secret, shown this once: {endpoint.secret}")

    def delete_model(self, request, obj):
        services.endpoint_delete(endpoint=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_delete(endpoint=endpoint, actor=request.user)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["attempted_at", "response_code", "error", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "message",
        "endpoint",
        "status",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["message", "endpoint"]
    fields = [
        "endpoint",
        "message",
        "status",
        "attempts",
        "next_attempt_at",
        "last_response_code",
        "last_error",
        "created_at",
        "completed_at",
    ]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_redeliver_permission(self, request) -> bool:
        # Sending again changes what a receiver sees: it takes the right to
        # change endpoints, not only to read the log.
        return request.user.has_perm("webhooks.change_endpoint")

    @admin.action(description="Send the selected deliveries again", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        sent = 0
        for delivery in queryset.select_related("endpoint", "message"):
            try:
                services.delivery_redeliver(delivery=delivery, actor=request.user)
                sent += 1
            except ApplicationError as error:
                self.message_user(request, f"{delivery}: {error.message}", messages.ERROR)
        if sent:
            self.message_user(request, f"{sent} sent again.", messages.SUCCESS)
