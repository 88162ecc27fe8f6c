"""The tenant pages of the operator console. The tenant's page shows what a
support call asks about a customer: its licenses with their seats in use
(from the seat ledger), state and expiry, its users, and its latest audit
rows with a link to all of them. It draws on every app (the license admin's
helpers, users, the audit log), so it lives with the project, on the top
floor, not in `tenants`, which the others stand on."""

from django.contrib import admin
from django.urls import reverse
from django.utils.http import urlencode

from accounts.models import User
from audit.models import AuditLog
from audit.readable import References, TargetLabels, details_text, who
from core.dates import when
from licenses.admin import last_activity, license_state, seats_in_use
from licenses.models import License
from tenants.models import Tenant
from tenants.services import tenant_create

# Rows of each kind the tenant page lists (the lists link to the rest).
TENANT_PAGE_ROWS = 50


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "created")
    search_fields = ("name", "slug", "id")
    list_filter = ("is_active",)
    # By name, then slug: two tenants of one name keep one order here and in
    # the license list's tenant filter (which takes this admin's ordering).
    ordering = ("name", "slug")
    readonly_fields = ("id", "created", "updated")
    change_form_template = "admin/tenants/tenant/change_form.html"
    # Its times in the one format, with a link to the tenant's audit rows.
    object_history_template = "admin/audit/object_history.html"

    def get_fields(self, request, obj=None):
        if obj is None:
            # Created the one way every tenant is (active); deactivating is a change.
            return ("name", "slug")
        return ("id", "name", "slug", "is_active", "created", "updated")

    @admin.display(description="Created", ordering="created_at")
    def created(self, tenant):
        return when(tenant.created_at, seconds=True, none="—")

    @admin.display(description="Updated")
    def updated(self, tenant):
        return when(tenant.updated_at, seconds=True, none="—")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        tenant = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if tenant is not None:
            extra.update(self._support_panel(tenant))
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def history_view(self, request, object_id, extra_context=None):
        extra = {
            **(extra_context or {}),
            "audit_rows_url": f"{reverse('admin:audit_auditlog_changelist')}?{urlencode({'target_id': object_id})}",
        }
        return super().history_view(request, object_id, extra_context=extra)

    @staticmethod
    def _support_panel(tenant: Tenant) -> dict:
        licenses = list(
            License.objects.filter(tenant_id=tenant.pk)
            .select_related("policy")
            .order_by("name")[:TENANT_PAGE_ROWS]
        )
        used, latest = seats_in_use(licenses), last_activity(licenses)
        license_rows = [
            {
                "license": license,
                "url": reverse("admin:licenses_license_change", args=[license.pk]),
                "seats": used.get(license.pk),
                "state": license_state(license),
                "last_activity": latest.get(str(license.pk)),
            }
            for license in licenses
        ]
        users = list(User.objects.filter(tenant_id=tenant.pk).order_by("email")[:TENANT_PAGE_ROWS])
        audit = list(AuditLog.objects.filter(tenant_id=tenant.pk).order_by("-id")[:20])
        references = References(audit, people=True, details=True)
        labels = TargetLabels(audit, references)
        known = [row["seats"] for row in license_rows if row["seats"] is not None]
        return {
            "tenant_licenses": license_rows,
            "tenant_license_count": License.objects.filter(tenant_id=tenant.pk).count(),
            "tenant_seats_used": sum(known),
            "tenant_seats_max": sum(license.max_seats for license in licenses),
            "tenant_ledger_down": len(known) < len(license_rows),
            "tenant_users": users,
            "tenant_user_count": User.objects.filter(tenant_id=tenant.pk).count(),
            "tenant_audit": [
                {
                    "row": row,
                    "who": who(row, references),
                    "target": labels(row),
                    "details": details_text(row.details, references),
                }
                for row in audit
            ],
            "tenant_audit_url": f"{reverse('admin:audit_auditlog_changelist')}?tenant={tenant.pk}",
            "tenant_licenses_url": f"{reverse('admin:licenses_license_changelist')}?tenant__id__exact={tenant.pk}",
        }

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = tenant_create(name=obj.name, slug=obj.slug, actor=request.user)
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        return None

    def has_delete_permission(self, request, obj=None):
        # Tenants are deactivated, never deleted: their audit log is kept for years.
        return False
