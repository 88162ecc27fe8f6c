"""The operator console for licenses.

The admin site runs on the operator database path (tenants.middleware); every
change an operator makes here goes through the license services, which open
the license's tenant scope and leave an audit row, exactly as the API does.
State with rules of its own (suspension, expiry, bound machines, the key,
live leases) is changed by the actions on the license page, not by editing
fields.

A page that shows a secret (a new license's key, a regenerated key) is
reached by redirect from the POST that made it (post/redirect/get): the POST
seals the key into the operator's session under a one-time token
(`key_to_show_once`), the GET shows it once and forgets it; a reload says it
was shown, and never regenerates or creates again. A pasted key is looked up
by a POST form, never a query string.
"""

from __future__ import annotations

import base64
import csv
import os
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from accounts.models import User
from audit.events import Event
from audit.models import AuditLog
from core.errors import ApplicationError, ServiceUnavailable
from licenses.keys import KEY_PREFIX, license_key_digest, normalize_license_key
from licenses.leases import lease_force_release
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from licenses.services import (
    BlockKind,
    ExpiryChange,
    license_block,
    license_create,
    license_extend,
    license_extend_by_days,
    license_make_perpetual,
    license_regenerate_key,
    license_resume,
    license_suspend,
    license_unbind_machine,
    license_unblock,
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


# --- Keys shown once ---------------------------------------------------------------
# The session row is readable by the app role (accounts/sessions.py signs it but
# does not hide it), so the key is sealed in it: AES-GCM under a key derived
# from SECRET_KEY, the session's own key (the cookie, which the table does not
# hold) and the token. Shown, the sealed key is dropped and the token marked.

SHOWN_ONCE_SESSION_KEY = "licenses.keys_shown_once"
# A key not shown within this many seconds of being made is dropped unseen.
SHOWN_ONCE_SECONDS = 600
# Tokens remembered per session (shown or not), newest first.
SHOWN_ONCE_KEEP = 20
_SHOWN_ONCE_PURPOSE = "coditect.licenses.admin.key-shown-once"


def _sealer(session_key: str, token: str):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(salted_hmac(_SHOWN_ONCE_PURPOSE, f"{session_key}:{token}", algorithm="sha256").digest())


def key_to_show_once(request, license: License, key: str, *, created: bool) -> str:
    """Seal a new key into the operator's session; return the token of the one
    page that will show it."""
    session = request.session
    if session.session_key is None:
        session.save()
    token = secrets.token_urlsafe(18)
    nonce = os.urandom(12)
    sealed = _sealer(session.session_key, token).encrypt(nonce, key.encode(), str(license.pk).encode())
    now = time.time()
    # Keys left unseen past their time are dropped (their tokens stay, marked).
    entries = {
        known: {**entry, "sealed": None, "expired": True}
        if entry.get("sealed") and now - entry["at"] > SHOWN_ONCE_SECONDS
        else entry
        for known, entry in session.get(SHOWN_ONCE_SESSION_KEY, {}).items()
    }
    entries[token] = {
        "license": str(license.pk),
        "created": created,
        "at": now,
        "sealed": base64.b64encode(nonce + sealed).decode(),
    }
    newest = sorted(entries.items(), key=lambda item: item[1]["at"], reverse=True)[:SHOWN_ONCE_KEEP]
    session[SHOWN_ONCE_SESSION_KEY] = dict(newest)
    return token


def key_shown_once(request, license: License, token: str) -> tuple[str, str | None, dict]:
    """("show", key, entry) the first time; then ("shown", None, entry); an
    unknown token, another license's, or one older than SHOWN_ONCE_SECONDS:
    ("gone", None, entry-or-{})."""
    session = request.session
    entries = dict(session.get(SHOWN_ONCE_SESSION_KEY, {}))
    entry = entries.get(token)
    if not isinstance(entry, dict) or entry.get("license") != str(license.pk):
        return "gone", None, {}
    if entry.get("expired"):
        return "gone", None, entry
    if entry.get("sealed") is None:
        return "shown", None, entry
    if time.time() - entry["at"] > SHOWN_ONCE_SECONDS:
        entry = {**entry, "sealed": None, "expired": True}
        entries[token] = entry
        session[SHOWN_ONCE_SESSION_KEY] = entries
        return "gone", None, entry
    from cryptography.exceptions import InvalidTag

    raw = base64.b64decode(entry["sealed"])
    try:
        key = _sealer(session.session_key, token).decrypt(raw[:12], raw[12:], str(license.pk).encode())
    except InvalidTag:  # sealed under another session key (signed in again since)
        key = None
    entry = {**entry, "sealed": None, "shown_at": time.time(), "expired": key is None}
    entries[token] = entry
    session[SHOWN_ONCE_SESSION_KEY] = entries
    if key is None:
        return "gone", None, entry
    return "show", key.decode(), entry


# A license expiring within this many days is marked "expiring soon".
EXPIRING_SOON_DAYS = 30
# The license page's usage history.
USAGE_DAYS = 30
LICENSE_TARGET = "licenses.license"


def when(moment, *, seconds: bool = False, none: str = "never") -> str:
    """The console's one date format, with its zone: "2026-12-02 14:05 UTC"."""
    if moment is None or moment == "":
        return none
    if isinstance(moment, str):
        parsed = parse_datetime(moment)
        if parsed is None:
            return moment
        moment = parsed
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M{':%S' if seconds else ''}} UTC"


def license_state(license: License, now=None) -> str:
    """active, suspended or expired (suspension first: it is what an operator undoes)."""
    if license.suspended:
        return "suspended"
    if license.is_expired(now):
        return "expired"
    return "active"


def seats_in_use(licenses) -> dict:
    """{license id: seats in use, or None when the ledger does not answer},
    one ledger call per license (a page is at most list_max_show_all)."""
    ledger = seat_ledger()
    used = {}
    for license in licenses:
        try:
            used[license.pk] = ledger.used(license_id=license.pk, tenant_id=license.tenant_id)
        except ServiceUnavailable:
            used[license.pk] = None
    return used


def last_activity(licenses) -> dict:
    """{license id: the time of its latest audit row}, one query for them all."""
    licenses = list(licenses)
    if not licenses:
        return {}
    rows = (
        AuditLog.objects.filter(
            tenant_id__in={license.tenant_id for license in licenses},
            target_type=LICENSE_TARGET,
            target_id__in=[str(license.pk) for license in licenses],
        )
        .values("target_id")
        .annotate(latest=Max("created_at"))
    )
    return {row["target_id"]: row["latest"] for row in rows}


def audit_list_url(license: License) -> str:
    return f"{reverse('admin:audit_auditlog_changelist')}?target_id={license.pk}"


class LicenseStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (
            ("active", "Active"),
            ("expiring", f"Expiring within {EXPIRING_SOON_DAYS} days"),
            ("suspended", "Suspended"),
            ("expired", "Expired"),
        )

    def queryset(self, request, queryset):
        now = timezone.now()
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.value() == "active":
            return queryset.filter(unexpired, suspended=False)
        if self.value() == "expiring":
            return queryset.filter(
                suspended=False, expires_at__gt=now, expires_at__lte=now + timedelta(days=EXPIRING_SOON_DAYS)
            )
        if self.value() == "suspended":
            return queryset.filter(suspended=True)
        if self.value() == "expired":
            return queryset.filter(suspended=False, expires_at__lte=now)
        return queryset


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = (
        "key_prefix",
        "name",
        "tenant",
        "seats_column",
        "state_column",
        "expiry_column",
        "last_activity_column",
    )
    list_filter = ("tenant", LicenseStateFilter)
    actions = ("suspend_selected", "resume_selected", "extend_selected_30_days", "export_csv")
    list_per_page = 50
    list_max_show_all = 100
    # An id is found exactly; anything else by key prefix, name or tenant. A
    # whole key goes in the "Find by license key" form (a POST), never here:
    # the search box is a query string (see changelist_view).
    search_fields = ("^key_prefix", "name", "tenant__name", "tenant__slug")
    search_help_text = (
        "Type a key prefix (CDT-7K2QF), a name, a tenant or an id. "
        "A whole key goes in “Find by license key”, so that it never lands in an address."
    )
    change_list_template = "admin/licenses/license/change_list.html"
    list_select_related = ("tenant",)
    readonly_fields = ("id", "key_prefix", "created", "updated")
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
        "created",
        "updated",
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "tenant", *self.action_fields, "state_column", "expiry_column")

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        # The state and expiry as the list shows them (no red ✗ on a healthy license).
        shown = {"suspended": "state_column", "expires_at": "expiry_column"}
        return tuple(shown.get(name, name) for name in self.fields)

    def has_delete_permission(self, request, obj=None):
        # Licenses are suspended, not deleted: their history and usage stay.
        return False

    def changelist_view(self, request, extra_context=None):
        from django.contrib.admin.views.main import SEARCH_VAR

        term = request.GET.get(SEARCH_VAR, "")
        if term and _looks_like_a_key(term.strip()):
            # It is in this request's address already; take it out of the next one
            # (and of history's last entry), and never search or echo it.
            query = request.GET.copy()
            del query[SEARCH_VAR]
            messages.warning(
                request,
                "A whole license key does not go in the search box (it would stay in the address, "
                "the browser's history and logs): paste it in “Find by license key”.",
            )
            changelist = reverse("admin:licenses_license_changelist")
            return HttpResponseRedirect(f"{changelist}?{query.urlencode()}" if query else changelist)
        extra = {
            **(extra_context or {}),
            "find_by_key_url": reverse("admin:licenses_license_find_by_key"),
        }
        return super().changelist_view(request, extra_context=extra)

    def find_by_key_view(self, request):
        """POST license_key: the license it opens, by id (its page's address
        names the id, never the key); the key is not repeated on any page."""
        changelist = reverse("admin:licenses_license_changelist")
        if request.method != "POST":
            return HttpResponseRedirect(changelist)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            term = _posted(request, "license_key").strip()
        except UnusableInput:
            term = ""
        if not _looks_like_a_key(term):
            messages.error(
                request,
                "That is not a whole license key (CDT-…). Search by prefix, name or tenant in the search box.",
            )
            return _see_other(changelist)
        license = self.get_queryset(request).filter(key_digest=license_key_digest(term)).first()
        if license is None:
            messages.error(request, "No license has that key (a regenerated key's old value opens nothing).")
            return _see_other(changelist)
        messages.success(request, f"Found by its key: {license} of {license.tenant}.")
        return _see_other(reverse("admin:licenses_license_change", args=[license.pk]))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:
            return queryset.filter(id=uuid.UUID(term)), False
        except ValueError:
            return super().get_search_results(request, queryset, term)

    # --- the list: seats, state, expiry, last activity -------------------------------

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)
        used, latest = seats_in_use(page), last_activity(page)
        now = timezone.now()
        for license in page:
            license.console_seats = used.get(license.pk)
            license.console_last_activity = latest.get(str(license.pk))
            license.console_now = now
        return changelist

    @admin.display(description="Seats in use")
    def seats_column(self, license):
        used = getattr(license, "console_seats", None)
        if used is None:
            return format_html(
                '<span class="seats" title="The seat ledger does not answer">? / {}</span>', license.max_seats
            )
        return format_html('<span class="seats">{} / {}</span>', used, license.max_seats)

    @admin.display(description="State")
    def state_column(self, license):
        state = license_state(license, getattr(license, "console_now", None))
        return format_html('<span class="license-state state-{}">{}</span>', state, state)

    @admin.display(description="Expires", ordering="expires_at")
    def expiry_column(self, license):
        if license.expires_at is None:
            return "never (perpetual)"
        now = getattr(license, "console_now", None) or timezone.now()
        soon = now < license.expires_at <= now + timedelta(days=EXPIRING_SOON_DAYS)
        if soon:
            return format_html(
                '{} <strong class="expiring-soon">expiring soon</strong>', when(license.expires_at)
            )
        return when(license.expires_at)

    @admin.display(description="Last activity")
    def last_activity_column(self, license):
        return when(getattr(license, "console_last_activity", None), none="—")

    @admin.display(description="Created")
    def created(self, license):
        return when(license.created_at, seconds=True, none="—")

    @admin.display(description="Updated")
    def updated(self, license):
        return when(license.updated_at, seconds=True, none="—")

    # --- bulk actions and CSV -----------------------------------------------------------

    def _each(self, request, queryset, action, done: str) -> None:
        changed, refused = 0, []
        for license in queryset:
            try:
                if action(license) is not False:
                    changed += 1
            except ApplicationError as error:
                refused.append(f"{license}: {error.message}")
        if changed:
            messages.success(request, f"{done}: {changed} license{'s' if changed != 1 else ''}.")
        for line in refused:
            messages.error(request, line)

    @admin.action(description="Suspend the selected licenses", permissions=["change"])
    def suspend_selected(self, request, queryset):
        self._each(
            request,
            queryset.filter(suspended=False),
            lambda license: license_suspend(license=license, actor=request.user, reason="bulk suspend"),
            "Suspended",
        )

    @admin.action(description="Resume the selected licenses", permissions=["change"])
    def resume_selected(self, request, queryset):
        self._each(
            request,
            queryset.filter(suspended=True),
            lambda license: license_resume(license=license, actor=request.user),
            "Resumed",
        )

    @admin.action(
        description="Extend the selected licenses by 30 days (perpetual ones stay perpetual)",
        permissions=["change"],
    )
    def extend_selected_30_days(self, request, queryset):
        self._each(
            request,
            queryset.filter(expires_at__isnull=False),
            lambda license: license_extend_by_days(license=license, days=30, actor=request.user)[1],
            "Extended by 30 days",
        )

    @admin.action(description="Export the selected licenses as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        licenses = list(queryset.select_related("tenant"))
        used, latest = seats_in_use(licenses), last_activity(licenses)
        response = _csv_response("licenses.csv")
        writer = csv.writer(response)
        writer.writerow(
            [
                "id",
                "tenant",
                "name",
                "key_prefix",
                "state",
                "seats_in_use",
                "max_seats",
                "expires_at",
                "last_activity",
                "created_at",
            ]
        )
        for license in licenses:
            seats = used.get(license.pk)
            writer.writerow(
                [
                    license.pk,
                    license.tenant.name,
                    _csv_cell(license.name),
                    license.key_prefix,
                    license_state(license),
                    "" if seats is None else seats,
                    license.max_seats,
                    when(license.expires_at, none=""),
                    when(latest.get(str(license.pk)), none=""),
                    when(license.created_at, seconds=True),
                ]
            )
        return response

    def audit_csv_view(self, request, object_id):
        """The license's audit rows, newest first, as CSV."""
        license = self.get_object(request, object_id)
        if license is None:
            raise Http404("No such license.")
        if not self.has_view_or_change_permission(request, license):
            raise PermissionDenied
        rows = AuditLog.objects.filter(
            tenant_id=license.tenant_id, target_type=LICENSE_TARGET, target_id=str(license.pk)
        ).order_by("-id")
        response = _csv_response(f"license-{license.key_prefix}-audit.csv")
        writer = csv.writer(response)
        writer.writerow(["id", "created_at", "action", "actor", "ip_address", "request_id", "details"])
        for row in rows.iterator(chunk_size=500):
            writer.writerow(
                [
                    row.pk,
                    when(row.created_at, seconds=True),
                    row.action,
                    _csv_cell(row.actor),
                    row.ip_address or "",
                    row.request_id,
                    _csv_cell(_details_text(row.details)),
                ]
            )
        return response

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
        return self._redirect_to_key(request, obj, key, created=True)

    def _redirect_to_key(self, request, license: License, key: str, *, created: bool):
        token = key_to_show_once(request, license, key, created=created)
        return _see_other(reverse("admin:licenses_license_key", args=[license.pk, token]))

    def key_view(self, request, object_id, token):
        """The one page that ever shows a key, once: not cached, not stored
        anywhere; a reload says it was shown."""
        license = self.get_object(request, object_id)
        if license is None:
            raise Http404("No such license.")
        if not self.has_view_or_change_permission(request, license):
            raise PermissionDenied
        state, key, entry = key_shown_once(request, license, token)
        created = bool(entry.get("created"))
        shown_at = entry.get("shown_at")
        titles = {
            "show": "License created" if created else "New license key",
            "shown": "This key was already shown",
            "gone": "This key is no longer available",
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": license,
            "title": titles[state],
            "state": state,
            "license_key": key,
            "created": created,
            "shown_at": datetime.fromtimestamp(shown_at, tz=UTC) if shown_at else None,
            "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
            "regenerate_url": reverse("admin:licenses_license_regenerate_key", args=[license.pk]),
        }
        response = TemplateResponse(
            request,
            "admin/licenses/license/key_issued.html",
            context,
            status=200 if state == "show" else 410,
        )
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
            view("set-expiry", require_POST(self.set_expiry_view)),
            view("make-perpetual", require_POST(self.make_perpetual_view)),
            view("unbind", require_POST(self.unbind_view)),
            # A POST without `confirm` answers the confirmation page; with it, acts.
            view("block", require_POST(self.block_view)),
            view("unblock", require_POST(self.unblock_view)),
            # GET asks for confirmation; POST regenerates and redirects to the key.
            view("regenerate-key", self.regenerate_key_view),
            view("audit-csv", self.audit_csv_view),
            path(
                "<path:object_id>/key/<str:token>/",
                self.admin_site.admin_view(self.key_view),
                name="licenses_license_key",
            ),
            path(
                "find-by-key/",
                self.admin_site.admin_view(self.find_by_key_view),
                name="licenses_license_find_by_key",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        license = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if license is not None:
            extra.update(self._seat_panel(license))
            extra["action_urls"] = {
                name: reverse(f"admin:licenses_license_{name}", args=[license.pk])
                for name in (
                    "release",
                    "suspend",
                    "resume",
                    "extend",
                    "set_expiry",
                    "make_perpetual",
                    "unbind",
                    "block",
                    "unblock",
                    "regenerate_key",
                )
            }
            extra["blocks"] = self._blocks_shown(license)
            extra["suspension"] = self._suspension(license)
            extra["usage"] = self._usage(license)
            extra["audit_url"] = audit_list_url(license)
            extra["audit_csv_url"] = reverse("admin:licenses_license_audit_csv", args=[license.pk])
            extra["state"] = license_state(license)
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
        # The address each lease was acquired from: its lease.acquired row (one query).
        addresses = {}
        if leases:
            acquired = AuditLog.objects.filter(
                tenant_id=license.tenant_id,
                action=Event.LEASE_ACQUIRED,
                target_type=LICENSE_TARGET,
                target_id=str(license.pk),
                details__session_id__in=[lease.session_id for lease in leases],
            ).values_list("details__session_id", "ip_address")
            addresses = {session: address for session, address in acquired if address}
        rows = []
        for lease in leases:
            info = lease.client_info if isinstance(lease.client_info, dict) else {}
            # A heartbeat renews the lease to lease_ttl from its time: the last
            # one was lease_ttl before the expiry (never before the lease began).
            beat = None
            if not lease.borrowed_until:
                beat = max(lease.created_at, lease.expires_at - timedelta(seconds=license.lease_ttl))
            rows.append(
                {
                    "lease": lease,
                    "holder": emails.get(str(lease.user_id), ""),
                    "hostname": info.get("hostname", ""),
                    "app_version": info.get("app_version", "") or info.get("version", ""),
                    "client_info": info,
                    "last_heartbeat": beat,
                    "ip": addresses.get(lease.session_id, ""),
                }
            )
        return {"seats_used": len(leases), "leases": rows}

    @staticmethod
    def _suspension(license: License) -> AuditLog | None:
        """The row that suspended the license (reason, who, when), while it is."""
        if not license.suspended:
            return None
        return (
            AuditLog.objects.filter(
                tenant_id=license.tenant_id,
                action=Event.LICENSE_SUSPENDED,
                target_type=LICENSE_TARGET,
                target_id=str(license.pk),
            )
            .order_by("-id")
            .first()
        )

    @staticmethod
    def _usage(license: License) -> dict:
        """Acquisitions and denials per UTC day over the last USAGE_DAYS days,
        counted from the audit log (live: no rollup lag), one query."""
        now = timezone.now()
        since = (now - timedelta(days=USAGE_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        counted = (
            AuditLog.objects.filter(
                tenant_id=license.tenant_id,
                action__in=(Event.LEASE_ACQUIRED, Event.LEASE_DENIED),
                created_at__gte=since,
                target_type=LICENSE_TARGET,
                target_id=str(license.pk),
            )
            .annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values("day", "action")
            .annotate(count=Count("id"))
        )
        days: dict = {}
        for row in counted:
            entry = days.setdefault(row["day"], {"day": row["day"], "acquired": 0, "denied": 0})
            entry["acquired" if row["action"] == Event.LEASE_ACQUIRED else "denied"] += row["count"]
        rows = sorted(days.values(), key=lambda entry: entry["day"], reverse=True)
        return {
            "days": rows,
            "acquired": sum(entry["acquired"] for entry in rows),
            "denied": sum(entry["denied"] for entry in rows),
            "since": since,
            "as_of": now,
            "span": USAGE_DAYS,
        }

    @staticmethod
    def _blocks_shown(license: License) -> list[dict]:
        """The license's blocks, a user's with their email beside the id."""
        user_ids = []
        for block in license.blocks or ():
            if block.get("kind") == BlockKind.USER:
                try:
                    user_ids.append(uuid.UUID(str(block.get("value"))))
                except ValueError:
                    pass
        emails = {
            str(pk): email for pk, email in User.objects.filter(pk__in=user_ids).values_list("pk", "email")
        }
        return [
            {
                **block,
                "email": emails.get(str(block.get("value")), ""),
                "at": parse_datetime(block.get("at") or ""),
            }
            for block in license.blocks or ()
        ]

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
            return self._unusable(request, license, error)
        else:
            messages.success(request, success)
        return self._back(license)

    def _unusable(self, request, license: License, error: UnusableInput) -> HttpResponseRedirect:
        label = str(error).replace("_", " ")
        messages.error(request, f"The {label} given is not usable (too long, or with a NUL character).")
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
            f"Lease {session_id[:8]}… released; its seat is free. The client will acquire a seat again "
            "at its next heartbeat unless its machine or user is blocked (“Block this machine” / "
            "“Block this user”).",
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
        """Extend by N days from the current expiry (from now if it has passed).
        A perpetual license stays perpetual: only a date makes it expire."""
        license = self._license_for_action(request, object_id)
        days = request.POST.get("days", "").strip()
        # isdecimal alone takes digits of other scripts, isdigit even "²".
        if not (days.isascii() and days.isdecimal() and len(days) <= 4 and 1 <= int(days) <= 3660):
            messages.error(request, "Extend by a whole number of days (1 to 3660).")
            return self._back(license)
        try:
            extended, changed = license_extend_by_days(license=license, days=int(days), actor=request.user)
        except ApplicationError as error:
            messages.error(request, error.message)
            return self._back(license)
        if not changed:
            messages.warning(
                request,
                "The license is perpetual and stays perpetual: extending adds days to an expiry, "
                "and it has none. Set a date to make it expire.",
            )
        else:
            messages.success(
                request,
                f"Extended by {int(days)} days: the license now expires {_when(extended.expires_at)}.",
            )
        return self._back(license)

    def set_expiry_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        try:
            expires_at = self._posted_expiry(request)
        except ValueError as error:
            messages.error(request, str(error))
            return self._back(license)
        return self._run(
            request,
            license,
            lambda: license_extend(
                license=license, expires_at=expires_at, actor=request.user, how=ExpiryChange.SET
            ),
            f"The license now expires {_when(expires_at)}.",
        )

    def make_perpetual_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        if license.expires_at is None:
            messages.info(request, "The license is already perpetual.")
            return self._back(license)
        return self._run(
            request,
            license,
            lambda: license_make_perpetual(license=license, actor=request.user),
            "The license is now perpetual: it never expires (set a date to change that).",
        )

    @staticmethod
    def _posted_expiry(request):
        """The date the set-expiry form asks for, or ValueError with what to fix.
        A date alone is its midnight; times are UTC unless they say otherwise."""
        exact = request.POST.get("expires_at", "").strip()
        if not exact:
            raise ValueError("Give an expiry (YYYY-MM-DD or YYYY-MM-DD HH:MM, UTC).")
        expires_at = None
        # Python 3.11's fromisoformat() ignores what follows a NUL.
        if len(exact) <= 40 and "\x00" not in exact:
            try:
                expires_at = parse_datetime(exact)
                if expires_at is None:
                    day = parse_date(exact)
                    if day is not None:
                        expires_at = datetime(day.year, day.month, day.day)
                if expires_at is not None and timezone.is_naive(expires_at):
                    expires_at = timezone.make_aware(expires_at, UTC)
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

    def block_view(self, request, object_id):
        """Block a machine or a user: the license page's form and each live
        lease's "block" buttons post here; the confirmation page answers, and
        its "Yes, block" posts again with `confirm`."""
        license = self._license_for_action(request, object_id)
        try:
            kind, value = _posted(request, "kind"), _posted(request, "value").strip()
            reason = _posted(request, "reason").strip()[:200]
        except UnusableInput as error:
            return self._unusable(request, license, error)
        if kind not in BlockKind.ALL or not value:
            messages.error(request, "Name a machine (its fingerprint) or a user (email or id) to block.")
            return self._back(license)
        if request.POST.get("confirm") != "yes":
            return self._block_confirmation(
                request, license, kind=kind, value=value, reason=reason, block=True
            )
        return self._run(
            request,
            license,
            lambda: license_block(license=license, kind=kind, value=value, reason=reason, actor=request.user),
            f"The {kind} is blocked on this license: its live seats were released, and it cannot acquire "
            "again until unblocked.",
        )

    def unblock_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        try:
            kind, value = _posted(request, "kind"), _posted(request, "value").strip()
        except UnusableInput as error:
            return self._unusable(request, license, error)
        if kind not in BlockKind.ALL:
            messages.error(request, "A block names a machine or a user.")
            return self._back(license)
        if request.POST.get("confirm") != "yes":
            if license.block_of(kind, value) is None:
                messages.error(request, f"This {kind} is not blocked on the license.")
                return self._back(license)
            return self._block_confirmation(request, license, kind=kind, value=value, reason="", block=False)
        return self._run(
            request,
            license,
            lambda: license_unblock(license=license, kind=kind, value=value, actor=request.user),
            f"The {kind} is unblocked: it may acquire seats of this license again.",
        )

    def _block_confirmation(self, request, license, *, kind, value, reason, block: bool):
        email = ""
        if kind == BlockKind.USER and "@" not in value:
            try:
                email = User.objects.filter(pk=uuid.UUID(value)).values_list("email", flat=True).first() or ""
            except ValueError:
                pass
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": license,
            "title": f"{'Block' if block else 'Unblock'} this {kind}?",
            "blocking": block,
            "kind": kind,
            "value": value,
            "email": email,
            "reason": reason,
            "action_url": reverse(
                f"admin:licenses_license_{'block' if block else 'unblock'}", args=[license.pk]
            ),
            "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
        }
        return TemplateResponse(request, "admin/licenses/license/block_confirm.html", context)

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
        return self._redirect_to_key(request, license, key, created=False)


def _see_other(url: str) -> HttpResponseRedirect:
    """303: the browser follows with a GET, and a reload repeats the GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _when(moment) -> str:
    return when(moment)


def _csv_response(filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _csv_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = str(text)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _details_text(details) -> str:
    if not isinstance(details, dict):
        return str(details)
    return "; ".join(f"{key}={value}" for key, value in details.items())
