"""The admin site, audited: every change made through it writes one audit row,
in the same transaction as the change.

`AuditedAdminMixin` records additions, changes and deletions (bulk ones too)
as `admin.added`, `admin.changed`, `admin.deleted`, in the chain of the
object's tenant (the operator chain for objects of no tenant). When the save
went through a service that wrote its own row for the object (creating a
license does), that row is the record and none is added. The audit app mixes
it into every registered ModelAdmin at start-up (AuditConfig.ready), so an
admin added anywhere later is covered without remembering to, and apps below
`audit` (tenants) need not import it.
"""

from __future__ import annotations

import functools
import json

from django.contrib import admin
from django.db import router, transaction

from audit.events import Event
from audit.models import AuditLog
from audit.services import audit_capture, audit_record
from tenants.models import Tenant


def _tenant_of(obj):
    if isinstance(obj, Tenant):
        return obj.pk
    return getattr(obj, "tenant_id", None)


def _change_message(message) -> object:
    if isinstance(message, str):
        try:
            return json.loads(message) if message else []
        except ValueError:
            return message
    return message


# The views that change things; each runs in one transaction with its audit rows.
AUDITED_VIEWS = ("changeform_view", "changelist_view", "delete_view", "user_change_password")


class AuditedAdminMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in AUDITED_VIEWS:
            view = getattr(self, name, None)
            if view is not None:
                setattr(self, name, functools.update_wrapper(functools.partial(self._audited, view), view))

    def _audited(self, view, request, *args, **kwargs):
        with audit_capture() as rows, transaction.atomic(using=router.db_for_write(self.model)):
            request._audit_rows = rows
            return view(request, *args, **kwargs)

    def _record(self, request, action: str, obj, message="") -> None:
        target = (obj._meta.label_lower, str(obj.pk))
        already = getattr(request, "_audit_rows", ())
        if any((row.target_type, row.target_id) == target for row in already):
            return
        audit_record(
            action=action,
            tenant_id=_tenant_of(obj),
            user=request.user,
            target=obj,
            details={"object": str(obj)[:200], "change": _change_message(message)},
        )

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._record(request, Event.ADMIN_ADDED, obj, message)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self._record(request, Event.ADMIN_CHANGED, obj, message)
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            self._record(request, Event.ADMIN_DELETED, obj)
        return entries


def audit_every_registered_admin(site: admin.AdminSite) -> None:
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, AuditedAdminMixin):
            continue
        base = type(model_admin)
        audited = type(f"Audited{base.__name__}", (AuditedAdminMixin, base), {"__module__": base.__module__})
        site.unregister(model)
        site.register(model, audited)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, in the database too."""

    list_display = ("created_at", "tenant", "action", "actor", "target_type", "target_id")
    list_filter = ("action",)
    search_fields = ("action", "actor", "target_id", "request_id")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
