"""The operator console for licenses.

The admin site runs on the operator database path (tenants.middleware); every
change an operator makes here goes through the license services, which open
the license's tenant scope and leave an audit row, exactly as the API does.
State with rules of its own (suspension, expiry, bound machines, the key,
live leases) is changed by the actions on the license page, not by editing
fields.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts.models import User
from core.errors import ApplicationError, ServiceUnavailable
from licenses.keys import KEY_PREFIX, license_key_digest, normalize_license_key
from licenses.leases import lease_force_release
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from licenses.services import (
    license_create,
    license_extend,
    license_regenerate_key,
    license_resume,
    license_suspend,
    license_unbind_machine,
    license_update,
)

# Longer than any session id, fingerprint or reason the console takes.
MAX_POSTED_LENGTH = 1000


class UnusableInput(Exception):
    """A posted field that no service could take (PostgreSQL refuses NUL)."""


def _posted(request, name: str) -> str:
    value = request.POST.get(name, "")
    if "\x00" in value or len(value) > MAX_POSTED_LENGTH:
        raise UnusableInput(name)
    return value


def _looks_like_a_key(term: str) -> bool:
    key = normalize_license_key(term)
    return key.startswith(f"{KEY_PREFIX}-") and len(key) >= 20


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "name", "tenant", "max_seats", "expires_at", "suspended")
    list_filter = ("suspended",)
    # A pasted key is found by its digest, an id exactly; anything else by key
    # prefix, name or tenant (see get_search_results).
    search_fields = ("^key_prefix", "name", "tenant__name", "tenant__slug")
    search_help_text = (
        "Paste a whole license key, or type a key prefix (CDT-7K2QF), a name, a tenant or an id."
    )
    list_select_related = ("tenant",)
    readonly_fields = ("id", "key_prefix", "created_at", "updated_at")
    # Changed only through the actions on the license page (each has a service).
    action_fields = ("suspended", "expires_at", "hardware_fingerprints")
    change_form_template = "admin/licenses/license/change_form.html"
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
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "tenant", *self.action_fields)

    def has_delete_permission(self, request, obj=None):
        # Licenses are suspended, not deleted: their history and usage stay.
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term and _looks_like_a_key(term):
            return queryset.filter(key_digest=license_key_digest(term)), False
        try:
            return queryset.filter(id=uuid.UUID(term)), False
        except ValueError:
            return super().get_search_results(request, queryset, term)

    # --- create and edit -----------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            saved = license_update(license=obj, fields=form.changed_data, actor=request.user)
            obj.updated_at = saved.updated_at
            return
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
        obj._issued_key = key

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(obj, "_issued_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        return self._key_page(request, obj, key, created=True)

    def _key_page(self, request, license: License, key: str, *, created: bool) -> TemplateResponse:
        """The one page that ever shows a key: not cached, not stored anywhere."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": license,
            "title": "License created" if created else "New license key",
            "license_key": key,
            "created": created,
            "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
        }
        response = TemplateResponse(request, "admin/licenses/license/key_issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    # --- the license page: live seats and actions ---------------------------------------

    def get_urls(self):
        def view(name, function):
            return path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(function),
                name=f"licenses_license_{name.replace('-', '_')}",
            )

        return [
            view("release", require_POST(self.release_view)),
            view("suspend", require_POST(self.suspend_view)),
            view("resume", require_POST(self.resume_view)),
            view("extend", require_POST(self.extend_view)),
            view("unbind", require_POST(self.unbind_view)),
            # GET asks for confirmation; POST regenerates and shows the key once.
            view("regenerate-key", self.regenerate_key_view),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        license = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if license is not None:
            extra.update(self._seat_panel(license))
            extra["action_urls"] = {
                name: reverse(f"admin:licenses_license_{name}", args=[license.pk])
                for name in ("release", "suspend", "resume", "extend", "unbind", "regenerate_key")
            }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    @staticmethod
    def _seat_panel(license: License) -> dict:
        try:
            leases = seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
        except ServiceUnavailable:
            return {"ledger_down": True}
        user_ids = []
        for lease in leases:
            try:
                user_ids.append(uuid.UUID(str(lease.user_id)))
            except ValueError:
                pass
        emails = {
            str(pk): email for pk, email in User.objects.filter(pk__in=user_ids).values_list("pk", "email")
        }
        return {
            "seats_used": len(leases),
            "leases": [{"lease": lease, "holder": emails.get(str(lease.user_id), "")} for lease in leases],
        }

    def _license_for_action(self, request, object_id) -> License:
        license = self.get_object(request, object_id)
        if license is None:
            raise Http404("No such license.")
        if not self.has_change_permission(request, license):
            raise PermissionDenied
        return license

    def _back(self, license: License) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:licenses_license_change", args=[license.pk]))

    def _run(self, request, license: License, action, success: str) -> HttpResponseRedirect:
        try:
            action()
        except ApplicationError as error:
            messages.error(request, error.message)
        except UnusableInput as error:
            label = str(error).replace("_", " ")
            messages.error(request, f"The {label} given is not usable (too long, or with a NUL character).")
        else:
            messages.success(request, success)
        return self._back(license)

    def release_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        session_id = request.POST.get("session_id", "")
        return self._run(
            request,
            license,
            lambda: lease_force_release(
                license=license,
                session_id=_posted(request, "session_id"),
                actor=request.user,
            ),
            f"Lease {session_id[:8]}… released; its seat is free.",
        )

    def suspend_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        return self._run(
            request,
            license,
            lambda: license_suspend(
                license=license, actor=request.user, reason=_posted(request, "reason")[:200]
            ),
            "License suspended: no new seats; live leases end at their next heartbeat.",
        )

    def resume_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        return self._run(
            request,
            license,
            lambda: license_resume(license=license, actor=request.user),
            "License resumed.",
        )

    def extend_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        try:
            expires_at = self._posted_expiry(request, license)
        except ValueError as error:
            messages.error(request, str(error))
            return self._back(license)
        return self._run(
            request,
            license,
            lambda: license_extend(license=license, expires_at=expires_at, actor=request.user),
            f"License now expires {expires_at:%Y-%m-%d %H:%M} UTC."
            if expires_at
            else "License is now perpetual.",
        )

    @staticmethod
    def _posted_expiry(request, license: License):
        """The new expiry the extend form asks for (None: perpetual), or
        ValueError with what to fix."""
        days, exact = request.POST.get("days", "").strip(), request.POST.get("expires_at", "").strip()
        if days:
            # isdecimal alone takes digits of other scripts, isdigit even "²".
            if not (days.isascii() and days.isdecimal() and len(days) <= 4 and 1 <= int(days) <= 3660):
                raise ValueError("Extend by a whole number of days (1 to 3660).")
            base = max(license.expires_at or timezone.now(), timezone.now())
            try:
                return base + timedelta(days=int(days))
            except OverflowError:
                raise ValueError("That is past the last date the server can store.") from None
        if request.POST.get("perpetual"):
            return None
        if not exact:
            raise ValueError("Give a number of days or an expiry (YYYY-MM-DD HH:MM, UTC).")
        expires_at = None
        # Python 3.11's fromisoformat() ignores what follows a NUL.
        if len(exact) <= 40 and "\x00" not in exact:
            try:
                expires_at = parse_datetime(exact)
                if expires_at is not None and timezone.is_naive(expires_at):
                    expires_at = timezone.make_aware(expires_at, timezone.get_current_timezone())
            except (ValueError, OverflowError):
                pass  # well formed, but no such date ("2025-02-30")
        if expires_at is None:
            raise ValueError("The expiry given is not a date and time (YYYY-MM-DD HH:MM, UTC).")
        return expires_at

    def unbind_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        return self._run(
            request,
            license,
            lambda: license_unbind_machine(
                license=license,
                fingerprint=_posted(request, "fingerprint"),
                actor=request.user,
            ),
            "Machine unbound; its place is free for another machine.",
        )

    def regenerate_key_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": license,
                "title": "Regenerate the license key?",
                "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
            }
            return TemplateResponse(request, "admin/licenses/license/regenerate_key.html", context)
        license, key = license_regenerate_key(license=license, actor=request.user)
        return self._key_page(request, license, key, created=False)
