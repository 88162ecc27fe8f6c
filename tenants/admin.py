from django.contrib import admin

from tenants.models import Tenant
from tenants.services import tenant_create


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "created_at")
    search_fields = ("name", "slug", "id")
    list_filter = ("is_active",)
    readonly_fields = ("id", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            # Created the one way every tenant is (active); deactivating is a change.
            return ("name", "slug")
        return super().get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = tenant_create(name=obj.name, slug=obj.slug, actor=request.user)
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        return None

    def has_delete_permission(self, request, obj=None):
        # Tenants are deactivated, never deleted: their audit log is kept for years.
        return False
