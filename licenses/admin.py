from django.contrib import admin, messages

from licenses.models import License
from licenses.services import license_create


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "name", "tenant", "max_seats", "expires_at", "suspended")
    list_filter = ("suspended",)
    search_fields = ("key_prefix", "name", "id")
    readonly_fields = ("id", "key_prefix", "created_at", "updated_at")
    fields = (
        "id",
        "tenant",
        "name",
        "key_prefix",
        "max_seats",
        "expires_at",
        "suspended",
        "hardware_fingerprints",
        "max_machines",
        "entitlements",
        "lease_ttl",
        "offline_grace",
        "borrow_limit_hours",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else (*self.readonly_fields, "tenant")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        license, key = license_create(
            tenant=data["tenant"],
            name=data.get("name", ""),
            max_seats=data["max_seats"],
            expires_at=data.get("expires_at"),
            fingerprints=data.get("hardware_fingerprints") or [],
            max_machines=data.get("max_machines"),
            entitlements=data.get("entitlements") or {},
            lease_ttl=data.get("lease_ttl"),
            offline_grace=data.get("offline_grace"),
            borrow_limit_hours=data.get("borrow_limit_hours"),
            actor=request.user,
        )
        obj.pk = license.pk
        messages.warning(request, f"License key (shown this once, copy it now): {key}")
