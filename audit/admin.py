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
import uuid

from django.contrib import admin
from django.db import router, transaction
from django.utils.html import format_html

from audit.events import Event
from audit.models import AuditLog
from audit.readable import References, TargetLabels, details_text, row_page
from audit.readable import who as who_did
from audit.services import audit_capture, audit_record
from core import dates
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
    # A page's history in the console's one date format (with its zone).
    object_history_template = "admin/audit/object_history.html"

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


class TenantFilter(admin.SimpleListFilter):
    """By tenant (from the tenants table, not a scan of the log), or the
    operator chain (events of no tenant). Each is "Name (slug)", by name then
    slug: two tenants of one name are told apart."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        tenants = Tenant.objects.using(router.db_for_read(AuditLog)).order_by("name", "slug")
        return [
            ("none", "Operator (no tenant)"),
            *((str(tenant.pk), f"{tenant.name} ({tenant.slug})") for tenant in tenants),
        ]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(tenant__isnull=True)
        if self.value():
            try:
                return queryset.filter(tenant_id=uuid.UUID(self.value()))
            except ValueError:
                return queryset.none()
        return queryset


class ActionFilter(admin.SimpleListFilter):
    """By action, from the declared events (audit/events.py), not a scan of the log."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(event.value, event.value) for event in sorted(Event, key=lambda event: event.value)]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, in the database too. The list reads
    as text (targets named, details written out), filters by tenant, action and
    date, and may be narrowed to one target (`?target_id=`), as each license
    page links it. A row's own page (audit/readable.row_page) is a page to
    read, not a form: who, what, on what, and each detail on its own line."""

    list_display = ("when", "tenant", "action", "who", "target", "details_shown")
    list_filter = (TenantFilter, ActionFilter, ("created_at", admin.DateFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("action", "actor", "target_id", "request_id")
    date_hierarchy = "created_at"
    list_per_page = 50
    change_list_template = "admin/audit/auditlog/change_list.html"
    change_form_template = "admin/audit/auditlog/change_form.html"
    object_history_template = "admin/audit/object_history.html"

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        self._references = References(rows, people=True, details=True)
        self._labels = TargetLabels(rows, self._references)
        return changelist

    @admin.display(description="When (UTC)", ordering="created_at")
    def when(self, row):
        return dates.when(row.created_at, seconds=True)

    @admin.display(description="Who")
    def who(self, row):
        # The users of the page's rows are read once (References), as the row's page does.
        references = getattr(self, "_references", None) or References([row], people=True)
        return who_did(row, references)

    @admin.display(description="Target")
    def target(self, row):
        labels = getattr(self, "_labels", None)
        return labels(row) if labels else TargetLabels([row])(row)

    @admin.display(description="Details")
    def details_shown(self, row):
        return format_html(
            '<div class="cell-clamp">{}</div>', details_text(row.details, getattr(self, "_references", None))
        )

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in ("target_id", "target_type") or super().lookup_allowed(lookup, value, request)

    def get_fields(self, request, obj=None):
        # The page draws its own rows (row_page); the form behind it has none.
        return ()

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The row the view already read and checked the permission for.
        if obj is not None:
            page = row_page(obj)
            context.update(page, title=f"Audit row {obj.pk}", subtitle=page["audit_title"])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
