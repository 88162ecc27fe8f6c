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

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.models import User
from audit.events import Event
from audit.models import AuditLog
from audit.readable import value_text
from core.dates import when
from core.errors import ApplicationError, ServiceUnavailable
from licenses.keys import license_key_digest, looks_like_a_key
from licenses.leases import lease_force_release
from licenses.ledger.gateway import seat_ledger
from licenses.mailing import license_delivery_send
from licenses.models import DEFAULT_POLICY_SLUG, License, Policy, Product
from licenses.once import NONCE_FIELD, nonce_claim, nonce_issue, once_register, once_take
from licenses.services import (
    BlockKind,
    ExpiryChange,
    block_value,
    license_block,
    license_block_named,
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
    once_register(request, token, license)
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
    if not once_take(request, token, license):
        # Another request (a second tab opened at the same moment) took it; its
        # own answer marks the session.
        return "shown", None, entry
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


def license_state(license: License, now=None) -> str:
    """active, grace (expired, inside its policy's grace period: it still holds
    seats), suspended or expired (suspension first: it is what an operator undoes)."""
    if license.suspended:
        return "suspended"
    if license.is_expired(now):
        return "expired"
    if license.in_grace(now):
        return "grace"
    return "active"


# --- The license form: a policy and codes of its catalog ------------------------------


def entitlement_codes_parse(text: str):
    """The form's entitlements: codes separated by commas or spaces, or a JSON
    list of codes, or a {code: true} object. Blank: None (the whole catalog);
    "{}" or "[]": none at all."""
    import json
    import re

    text = (text or "").strip()
    if not text:
        return None
    if text[0] in "[{":
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError("Not JSON: give codes separated by commas.") from None
        if isinstance(value, dict):
            if any(item is not True for item in value.values()):
                raise forms.ValidationError(
                    'Entitlements are codes: {"code": true, ...}, or a list of codes.'
                )
            return list(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise forms.ValidationError("Give codes separated by commas, or a JSON list of codes.")
    return [code for code in re.split(r"[\s,]+", text) if code]


class LicenseForm(forms.ModelForm):
    policy = forms.ModelChoiceField(
        queryset=Policy.objects.select_related("product"),
        required=False,
        help_text="The template this license follows; empty: the default policy. "
        "Empty fields below follow the policy.",
    )
    entitlements = forms.CharField(
        required=False,
        help_text="Codes of the policy's catalog, separated by commas. Empty: the whole catalog; {} : none.",
    )

    class Meta:
        model = License
        # The admin names the fields it shows (LicenseAdmin.fields).
        fields = (
            "tenant",
            "name",
            "policy",
            "max_seats",
            "expires_at",
            "suspended",
            "hardware_fingerprints",
            "max_machines",
            "max_unbinds_per_month",
            "entitlements",
            "lease_ttl",
            "offline_grace",
            "borrow_limit_hours",
            "overdraft_seats",
            "linger_seconds",
            "idle_timeout",
            "borrow_max_seats",
            "borrow_max_per_user",
            "seat_mode",
            "machines_per_user",
            "queue_max_tickets",
            "queue_ticket_ttl",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (A new license has its UUID already: `_state.adding` says it is new.)
        if self.instance._state.adding and "max_seats" in self.fields:
            # A new license may take its seats from the policy, as the CLI and the API do.
            self.fields["max_seats"].required = False
            self.fields["max_seats"].help_text = "Empty: the policy's seats."
        entitlements = self.instance.entitlements if self.instance.pk else None
        if entitlements is not None:
            self.initial["entitlements"] = ", ".join(entitlements) if entitlements else "{}"
        else:
            self.initial["entitlements"] = ""

    def clean_max_seats(self):
        seats = self.cleaned_data.get("max_seats")
        if seats is None and self.instance._state.adding:
            # The policy is cleaned first (it stands before the seats in Meta.fields).
            return (self.cleaned_data.get("policy") or Policy.default()).seats
        return seats

    def clean_policy(self):
        # Not given: the license's own (an edit), or the default policy (a new one).
        if self.cleaned_data.get("policy") is not None:
            return self.cleaned_data["policy"]
        if self.instance.pk and self.instance.policy_id:
            return self.instance.policy
        return Policy.default()

    def clean(self):
        from licenses.terms import entitlements_from_codes

        cleaned = super().clean()
        policy = cleaned.get("policy")
        if "entitlements" in self.errors or policy is None:
            return cleaned
        try:
            codes = entitlement_codes_parse(self.data.get(self.add_prefix("entitlements"), ""))
            same_policy = self.instance.pk and self.instance.policy_id == policy.pk
            before = self.instance.entitlements if self.instance.pk else None
            if same_policy and codes is not None and before is not None and set(codes) == set(before):
                # As it was (a license older than policies may keep other values).
                cleaned["entitlements"] = before
                return cleaned
            if codes is not None:
                codes = entitlements_from_codes(policy, codes)
        except forms.ValidationError as error:
            self.add_error("entitlements", error)
        except ValueError as error:
            self.add_error("entitlements", str(error))
        else:
            cleaned["entitlements"] = codes
        return cleaned


def seats_in_use(licenses) -> dict:
    """{license id: seats in use, or None when the ledger does not answer},
    one ledger call per license (a page is at most list_max_show_all)."""
    ledger = seat_ledger()
    used = {}
    for license in licenses:
        try:
            used[license.pk] = ledger.used(
                license_id=license.pk, tenant_id=license.tenant_id, per_user=license.terms.seats_per_user
            )
        except ServiceUnavailable:
            used[license.pk] = None
    return used


def last_activity(licenses) -> dict:
    """{license id: the time of its latest use}: its latest lease event (an
    acquire, a denial, a release, a borrow, an end), not an operator's change
    or a sweep of the console's own; one query for them all."""
    licenses = list(licenses)
    if not licenses:
        return {}
    rows = (
        AuditLog.objects.filter(
            tenant_id__in={license.tenant_id for license in licenses},
            target_type=LICENSE_TARGET,
            target_id__in=[str(license.pk) for license in licenses],
            action__in=CUSTOMER_USE,
        )
        .values("target_id")
        .annotate(latest=Max("created_at"))
    )
    return {row["target_id"]: row["latest"] for row in rows}


# What a customer's applications did: the "last use" of a license.
CUSTOMER_USE = (
    Event.LEASE_ACQUIRED,
    Event.LEASE_DENIED,
    Event.LEASE_RELEASED,
    Event.LEASE_BORROWED,
    Event.LEASE_HEARTBEAT_REJECTED,
)


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
    form = LicenseForm
    list_display = (
        "key_prefix",
        "name",
        "tenant",
        "policy",
        "seats_column",
        "state_column",
        "expiry_column",
        "last_activity_column",
    )
    list_filter = ("tenant", "policy", LicenseStateFilter)
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
    list_select_related = ("tenant", "policy")
    readonly_fields = ("id", "key_prefix", "seat_rules_column", "created", "updated")
    # Changed only through the actions on the license page (each has a service).
    action_fields = ("suspended", "expires_at", "hardware_fingerprints")
    change_form_template = "admin/licenses/license/change_form.html"
    fields = (
        "id",
        "tenant",
        "name",
        "policy",
        "key_prefix",
        "max_seats",
        "expires_at",
        "suspended",
        "hardware_fingerprints",
        "max_machines",
        "max_unbinds_per_month",
        "entitlements",
        "lease_ttl",
        "offline_grace",
        "borrow_limit_hours",
        "overdraft_seats",
        "linger_seconds",
        "idle_timeout",
        "borrow_max_seats",
        "borrow_max_per_user",
        "seat_mode",
        "machines_per_user",
        "queue_max_tickets",
        "queue_ticket_ttl",
        "seat_rules_column",
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

    def lookup_allowed(self, lookup, value, request=None):
        # The key's digest is no filter: an address may not probe digests.
        if lookup.split("__")[0] == "key_digest":
            return False
        return super().lookup_allowed(lookup, value, request)

    def changelist_view(self, request, extra_context=None):
        # A whole key pasted in the search box never reaches here: see
        # coditect.middleware.KeyOutOfAdminAddressMiddleware.
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
        if not looks_like_a_key(term):
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

    @admin.display(description="Seat groups")
    def seat_rules_column(self, license):
        """The group rules, set by the tenant admin on the dashboard's license page."""
        rules = license.seat_rules or []
        if not rules:
            return "none (set by the tenant admin on the dashboard's license page)"
        return format_html_join(
            "; ",
            "{}: {} user(s), {} machine(s), reserves {}, limit {}, priority {}",
            (
                (
                    rule["name"],
                    len(rule.get("users", ())),
                    len(rule.get("machines", ())),
                    rule.get("reserve", 0),
                    "none" if rule.get("max") is None else rule["max"],
                    rule.get("priority", 0),
                )
                for rule in rules
            ),
        )

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

    @admin.display(description="Last use")
    def last_activity_column(self, license):
        """The customer's: seats held now, else its latest lease event (an
        operator's change or a sweep is no use)."""
        if getattr(license, "console_seats", None):
            return "in use now"
        return when(getattr(license, "console_last_activity", None), none="never used")

    @admin.display(description="Created")
    def created(self, license):
        return when(license.created_at, seconds=True, none="—")

    @admin.display(description="Updated")
    def updated(self, license):
        return when(license.updated_at, seconds=True, none="—")

    # --- bulk actions and CSV -----------------------------------------------------------
    # Suspend, resume and extend answer a page like Django's delete_selected:
    # the selected licenses, what each will become and which are left alone
    # (and why); its "Yes" posts again with `post` and a one-time token.

    def _bulk_page(
        self,
        request,
        licenses: list,
        *,
        action: str,
        title: str,
        lines: list[str],
        changes: list,
        verb: str,
        left_alone: list,
        submit: str,
        reason: str | None = None,
        error: str = "",
    ) -> TemplateResponse:
        if error:
            messages.error(request, error)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "action": action,
            "lines": lines,
            "changes": changes,
            "changes_heading": ngettext(
                "%(verb)s (%(count)d license)", "%(verb)s (%(count)d licenses)", len(changes)
            )
            % {"verb": verb, "count": len(changes)},
            "left_alone": left_alone,
            "left_alone_heading": ngettext(
                "Left alone (%(count)d license)", "Left alone (%(count)d licenses)", len(left_alone)
            )
            % {"count": len(left_alone)},
            "selected": licenses,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "asks_reason": reason is not None,
            "reason": reason or "",
            "submit": submit,
            "once": nonce_issue(request, f"bulk-{action}"),
            "once_field": NONCE_FIELD,
            "changelist_url": reverse("admin:licenses_license_changelist"),
        }
        return TemplateResponse(
            request, "admin/licenses/license/bulk_confirm.html", context, status=400 if error else 200
        )

    def _bulk_once(self, request, action: str, page, licenses: list, act, *, done: str, left_alone: list):
        """Run `act(license)` (a LogEntry message, or None when it changed
        nothing) on each license, once per confirmation page; then say what
        was changed, what was left alone and why, and what was refused."""
        with nonce_claim(request, request.POST.get(NONCE_FIELD, ""), f"bulk-{action}") as claim:
            if claim.used:
                messages.info(request, ALREADY_DONE)
                return None
            if not claim.fresh:
                return page(OUT_OF_DATE)
            changed, refused = [], []
            for license in licenses:
                try:
                    logged = act(license)
                except ApplicationError as error:
                    refused.append(f"{license}: {error.message}")
                    continue
                if logged:
                    changed.append(license)
                    self._log(request, license, logged)
                else:
                    left_alone.append((license, "nothing to change (changed meanwhile)"))
            claim.done()
        if changed:
            messages.success(
                request,
                ngettext(
                    "%(done)s: %(count)d license (%(names)s).",
                    "%(done)s: %(count)d licenses (%(names)s).",
                    len(changed),
                )
                % {
                    "done": done,
                    "count": len(changed),
                    "names": "; ".join(str(license) for license in changed),
                },
            )
        if left_alone:
            messages.info(
                request,
                ngettext(
                    "Left alone: %(count)d license: %(names)s.",
                    "Left alone: %(count)d licenses: %(names)s.",
                    len(left_alone),
                )
                % {
                    "count": len(left_alone),
                    "names": "; ".join(f"{license}, {why}" for license, why in left_alone),
                },
            )
        for line in refused:
            messages.error(request, line)
        return None

    @staticmethod
    def _selected(queryset) -> list:
        return list(queryset.select_related("tenant", "policy").order_by("tenant__name", "name", "pk"))

    @admin.action(description="Suspend the selected licenses…", permissions=["change"])
    def suspend_selected(self, request, queryset):
        licenses = self._selected(queryset)
        reason = request.POST.get("reason", "")
        reason = "" if "\x00" in reason else reason.strip()[:200]
        changes = [
            (license, "suspended: new checkouts refused, live seats end at their next heartbeat")
            for license in licenses
            if not license.suspended
        ]
        left_alone = [(license, "suspended already") for license in licenses if license.suspended]

        def page(error=""):
            return self._bulk_page(
                request,
                licenses,
                action="suspend_selected",
                title="Suspend the selected licenses?",
                lines=[
                    "Suspending stops new checkouts (acquires and borrows are answered 403 "
                    "license_suspended); each seat in use ends at its next heartbeat, and a borrowed seat "
                    "runs on offline until its borrow ends. The reason goes in each license's audit row.",
                ],
                changes=changes,
                verb="To suspend",
                left_alone=left_alone,
                submit="Yes, suspend them",
                reason=reason,
                error=error,
            )

        if request.POST.get("post") != "yes":
            return page()
        if not reason:
            return page("Give a reason for the suspension: it is kept in each license's audit row.")

        def act(license):
            if license.suspended:
                return None
            suspended = license_suspend(license=license, actor=request.user, reason=reason)
            return f"Suspended (bulk; reason: {reason})." if suspended.suspended else None

        return self._bulk_once(
            request,
            "suspend_selected",
            page,
            [license for license, _ in changes],
            act,
            done="Suspended",
            left_alone=left_alone,
        )

    @admin.action(description="Resume the selected licenses…", permissions=["change"])
    def resume_selected(self, request, queryset):
        licenses = self._selected(queryset)
        changes = [
            (
                license,
                "resumed: it may acquire seats again"
                + (
                    f" (but it stays expired since {when(license.expires_at)})"
                    if license.is_expired()
                    else ""
                ),
            )
            for license in licenses
            if license.suspended
        ]
        left_alone = [(license, "not suspended") for license in licenses if not license.suspended]

        def page(error=""):
            return self._bulk_page(
                request,
                licenses,
                action="resume_selected",
                title="Resume the selected licenses?",
                lines=["Resuming lets a license acquire seats again: new checkouts are accepted."],
                changes=changes,
                verb="To resume",
                left_alone=left_alone,
                submit="Yes, resume them",
                error=error,
            )

        if request.POST.get("post") != "yes":
            return page()

        def act(license):
            license_resume(license=license, actor=request.user)
            return "Resumed (bulk)."

        return self._bulk_once(
            request,
            "resume_selected",
            page,
            [license for license, _ in changes],
            act,
            done="Resumed",
            left_alone=left_alone,
        )

    @admin.action(
        description="Extend the selected licenses by 30 days… (perpetual ones stay perpetual)",
        permissions=["change"],
    )
    def extend_selected_30_days(self, request, queryset):
        days = BULK_EXTEND_DAYS
        licenses = self._selected(queryset)
        now = timezone.now()
        changes, left_alone = [], []
        for license in licenses:
            if license.expires_at is None:
                left_alone.append((license, PERPETUAL_STAYS))
                continue
            try:
                to = max(license.expires_at, now) + timedelta(days=days)
            except OverflowError:
                left_alone.append((license, "past the last date the server can store"))
                continue
            since = " (expired: counted from now)" if license.expires_at <= now else ""
            changes.append((license, f"expiry moves from {when(license.expires_at)} to {when(to)}{since}"))

        def page(error=""):
            return self._bulk_page(
                request,
                licenses,
                action="extend_selected_30_days",
                title=f"Extend the selected licenses by {_days(days)}?",
                lines=[
                    f"Each expiry moves {_days(days)} on from the current one, or from now for an expired "
                    "license. A perpetual license stays perpetual: only a date (on its page) makes it "
                    "expire.",
                ],
                changes=changes,
                verb="To extend",
                left_alone=left_alone,
                submit=f"Yes, extend them by {_days(days)}",
                error=error,
            )

        if request.POST.get("post") != "yes":
            return page()

        def act(license):
            extended, changed = license_extend_by_days(license=license, days=days, actor=request.user)
            if not changed:
                return None
            return (
                f"Expiry extended by {_days(days)} (bulk): from {when(license.expires_at)} to "
                f"{when(extended.expires_at)}."
            )

        return self._bulk_once(
            request,
            "extend_selected_30_days",
            page,
            [license for license, _ in changes],
            act,
            done=f"Extended by {_days(days)}",
            left_alone=left_alone,
        )

    @admin.action(description="Export the selected licenses as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        licenses = list(queryset.select_related("tenant", "policy"))
        used, latest = seats_in_use(licenses), last_activity(licenses)
        response = _csv_response("licenses.csv")
        writer = _SafeCsvWriter(response)
        writer.writerow(
            [
                "id",
                "tenant",
                "tenant_slug",
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
                    license.tenant.slug,
                    license.name,
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
        writer = _SafeCsvWriter(response)
        writer.writerow(["id", "created_at", "action", "actor", "ip_address", "request_id", "details"])
        for row in rows.iterator(chunk_size=500):
            writer.writerow(
                [
                    row.pk,
                    when(row.created_at, seconds=True),
                    row.action,
                    row.actor,
                    row.ip_address or "",
                    row.request_id,
                    _details_text(row.details),
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
            policy=data.get("policy"),
            max_seats=data["max_seats"],
            expires_at=data.get("expires_at"),
            fingerprints=data.get("hardware_fingerprints") or [],
            max_machines=data.get("max_machines"),
            max_unbinds_per_month=data.get("max_unbinds_per_month"),
            entitlements=data.get("entitlements"),
            lease_ttl=data.get("lease_ttl"),
            offline_grace=data.get("offline_grace"),
            borrow_limit_hours=data.get("borrow_limit_hours"),
            overdraft_seats=data.get("overdraft_seats"),
            linger_seconds=data.get("linger_seconds"),
            idle_timeout=data.get("idle_timeout"),
            borrow_max_seats=data.get("borrow_max_seats"),
            borrow_max_per_user=data.get("borrow_max_per_user"),
            seat_mode=data.get("seat_mode") or "",
            machines_per_user=data.get("machines_per_user"),
            queue_max_tickets=data.get("queue_max_tickets"),
            queue_ticket_ttl=data.get("queue_ticket_ttl"),
            actor=request.user,
        )
        obj.pk = license.pk
        obj._issued_key = key

    def add_view(self, request, form_url="", extra_context=None):
        """The add form carries a one-time token (licenses/once.py): a double
        click on Save creates one license, and the second POST goes to the
        page of its key. A form whose token is unknown or too old creates
        nothing."""
        extra = dict(extra_context or {})
        if request.method != "POST":
            extra["console_once"] = nonce_issue(request, "add")
            return super().add_view(request, form_url, extra)
        with nonce_claim(request, request.POST.get(NONCE_FIELD, ""), "add") as claim:
            if claim.used:
                messages.info(request, "That form was sent twice: one license was created, not two.")
                return _see_other(claim.result or reverse("admin:licenses_license_changelist"))
            if not claim.fresh:
                messages.error(
                    request,
                    "This form is out of date (open too long, or sent from an old page): nothing was "
                    "created. Fill it in again.",
                )
                return _see_other(reverse("admin:licenses_license_add"))
            # An invalid form comes back with the same token, still unused.
            extra["console_once"] = request.POST[NONCE_FIELD]
            response = super().add_view(request, form_url, extra)
            location = getattr(request, "_console_key_url", None)
            if location:
                # The key's sealed copy is saved before the token is released.
                request.session.save()
                request.session.modified = False
                claim.done(location)
        return response

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(obj, "_issued_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        request._console_key_url = self._key_url(request, obj, key, created=True)
        return _see_other(request._console_key_url)

    def _key_url(self, request, license: License, key: str, *, created: bool) -> str:
        """Seal the key into the session; the address of the one page that shows it."""
        token = key_to_show_once(request, license, key, created=created)
        return reverse("admin:licenses_license_key", args=[license.pk, token])

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
            # A GET or a first POST answers the confirmation page; its POST
            # (`confirm` and a one-time token) acts, once.
            view("suspend", self.suspend_view),
            view("resume", self.resume_view),
            view("extend", self.extend_view),
            view("set-expiry", self.set_expiry_view),
            view("make-perpetual", self.make_perpetual_view),
            view("unbind", require_POST(self.unbind_view)),
            # A POST without `confirm` answers the confirmation page; with it, acts once.
            view("block", require_POST(self.block_view)),
            view("unblock", require_POST(self.unblock_view)),
            # GET asks for confirmation; POST regenerates and redirects to the key.
            view("regenerate-key", self.regenerate_key_view),
            # A GET or a first POST asks (for the address too); its POST emails, once.
            view("email-key", self.email_key_view),
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
                    "email_key",
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
                beat = max(lease.created_at, lease.expires_at - timedelta(seconds=license.terms.lease_ttl))
            rows.append(
                {
                    "lease": lease,
                    "holder": emails.get(str(lease.user_id), ""),
                    "hostname": info.get("hostname", ""),
                    "app_version": info.get("app_version", "") or info.get("version", ""),
                    "client_info": info,
                    # What else the application sent (os, locale, …), each shown.
                    "client_extra": sorted(
                        (str(key), str(value))
                        for key, value in info.items()
                        if key not in ("hostname", "app_version", "version")
                    ),
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
        # Why seats were refused: the code each denial answered, most frequent first.
        by_code = (
            AuditLog.objects.filter(
                tenant_id=license.tenant_id,
                action=Event.LEASE_DENIED,
                created_at__gte=since,
                target_type=LICENSE_TARGET,
                target_id=str(license.pk),
            )
            .values("details__code")
            .annotate(count=Count("id"))
            .order_by("-count")
        )
        return {
            "days": rows,
            "denied_by_code": [(row["details__code"] or "—", row["count"]) for row in by_code],
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

        def release():
            lease_force_release(
                license=license, session_id=_posted(request, "session_id"), actor=request.user
            )
            self._log(request, license, f"Lease {session_id[:8]}… force-released.")

        return self._run(
            request,
            license,
            release,
            f"Lease {session_id[:8]}… released; its seat is free. The client will acquire a seat again "
            "at its next heartbeat unless its machine or user is blocked (“Block this machine” / "
            "“Block this user”).",
        )

    # --- confirmed actions: suspend, resume, extend, set expiry, make perpetual ---------
    # The license page's forms (or a GET of the action's address) answer a page
    # that says what will change; only its "Yes" (a POST with `confirm` and the
    # page's one-time token, licenses/once.py) acts, once.

    def _log(self, request, license: License, message: str) -> None:
        """The admin's own record (LogEntry: "Recent actions", the license's
        history) of a console action. Its audit row is the service's (or, for a
        release on the Redis ledger, the drainer's): the audited admin's
        log_change would add an `admin.changed` row beside it, so the LogEntry
        is written as ModelAdmin writes it."""
        admin.ModelAdmin.log_change(self, request, license, message)

    def _confirm_page(
        self,
        request,
        license: License,
        *,
        action: str,
        title: str,
        lines: list[str],
        submit: str,
        inputs: tuple = (),
        hidden: tuple = (),
        error: str = "",
    ) -> TemplateResponse:
        """The confirmation of one action; with `error`, the same form again,
        answered 400, the error said on it."""
        if error:
            messages.error(request, error)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": license,
            "title": title,
            "action": action,
            "lines": lines,
            "inputs": inputs,
            "hidden": hidden,
            "submit": submit,
            "error": error,
            "once": nonce_issue(request, action, license),
            "once_field": NONCE_FIELD,
            "action_url": reverse(f"admin:licenses_license_{action.replace('-', '_')}", args=[license.pk]),
            "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
        }
        return TemplateResponse(
            request, "admin/licenses/license/action_confirm.html", context, status=400 if error else 200
        )

    def _once(self, request, license: License, action: str, page, act) -> HttpResponse:
        """Act on a confirming POST, once per confirmation page. `page(error)`
        answers the form again; `act()` returns (message, LogEntry message or
        None when nothing changed) or raises ApplicationError."""
        change_url = reverse("admin:licenses_license_change", args=[license.pk])
        with nonce_claim(request, request.POST.get(NONCE_FIELD, ""), action, license) as claim:
            if claim.used:
                messages.info(request, ALREADY_DONE)
                return _see_other(claim.result or change_url)
            if not claim.fresh:
                return page(OUT_OF_DATE)
            try:
                message, logged = act()
            except ApplicationError as error:
                return page(error.message)
            claim.done(change_url)
        if logged:
            self._log(request, license, logged)
            messages.success(request, message)
        else:
            messages.info(request, message)
        return _see_other(change_url)

    def suspend_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        try:
            reason = _field(request, "reason").strip()[:200]
        except UnusableInput as error:
            return self._unusable(request, license, error)
        if license.suspended:
            messages.info(request, "The license is suspended already.")
            return self._back(license)

        def page(error=""):
            return self._confirm_page(
                request,
                license,
                action="suspend",
                title="Suspend this license?",
                lines=self._suspension_lines(license),
                inputs=(
                    {"name": "reason", "label": "Reason", "value": reason, "maxlength": 200, "size": 50},
                ),
                submit="Yes, suspend the license",
                error=error,
            )

        if not _confirming(request):
            return page()
        if not reason:
            return page(
                "Give a reason for the suspension: it is kept in the audit log and shown on the license page."
            )

        def act():
            license_suspend(license=license, actor=request.user, reason=reason)
            return (
                "License suspended: new checkouts are refused; live seats end at their next heartbeat.",
                f"Suspended (reason: {reason}).",
            )

        return self._once(request, license, "suspend", page, act)

    def _suspension_lines(self, license: License) -> list[str]:
        """What suspending does, in plain words, from what the code does:
        acquires and borrows are refused (license_suspended); a live lease ends
        at its next heartbeat (licenses.leases._end_if_license_ended); a
        borrowed seat makes no heartbeat, so it runs offline to its end."""
        lines = [
            "Suspending stops new checkouts: acquires and borrows are answered 403 license_suspended.",
        ]
        try:
            leases = seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
        except ServiceUnavailable:
            lines.append(
                "The seat ledger does not answer, so the seats in use cannot be counted now: each one "
                "ends at its next heartbeat, as below."
            )
            leases = None
        if leases is not None:
            held = [lease for lease in leases if not lease.borrowed_until]
            borrowed = [lease for lease in leases if lease.borrowed_until]
            if not leases:
                lines.append("No seat is in use now.")
            if held:
                latest = max(lease.expires_at for lease in held)
                lines.append(
                    ngettext(
                        "The %(count)d seat in use keeps running until its next heartbeat, which ends it "
                        "(the client is told license_suspended); if no heartbeat comes, it ends when its "
                        "lease runs out, by %(latest)s.",
                        "The %(count)d seats in use keep running until their next heartbeat, which ends "
                        "each one (the client is told license_suspended); one that sends no heartbeat "
                        "ends when its lease runs out, all of them by %(latest)s.",
                        len(held),
                    )
                    % {"count": len(held), "latest": when(latest)}
                )
            if borrowed:
                latest = max(lease.borrowed_until for lease in borrowed)
                lines.append(
                    ngettext(
                        "%(count)d borrowed seat runs on offline until its borrow ends (%(latest)s): a "
                        "borrowed seat sends no heartbeat; if its client comes back online before, its "
                        "next heartbeat ends it.",
                        "%(count)d borrowed seats run on offline until their borrows end (the last at "
                        "%(latest)s): a borrowed seat sends no heartbeat; one whose client comes back "
                        "online before ends at its next heartbeat.",
                        len(borrowed),
                    )
                    % {"count": len(borrowed), "latest": when(latest)}
                )
        lines.append(
            f"Other server processes see the suspension within {_seconds(settings.LICENSE_CACHE_SECONDS)}. "
            "Resuming the license lets it acquire seats again."
        )
        return lines

    def resume_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        if not license.suspended:
            messages.info(request, "The license is not suspended.")
            return self._back(license)

        def page(error=""):
            lines = []
            suspension = self._suspension(license)
            if suspension is not None:
                lines.append(
                    f"Suspended by {suspension.actor or '—'} at {when(suspension.created_at)}; reason: "
                    f"{(suspension.details or {}).get('reason') or 'none given'}."
                )
            lines.append(
                "Resuming lets the license acquire seats again: new checkouts are accepted (other server "
                f"processes see it within {_seconds(settings.LICENSE_CACHE_SECONDS)})."
            )
            if license.is_expired():
                lines.append(
                    f"It stays expired (since {when(license.expires_at)}): checkouts are still refused "
                    "(license_expired) until its expiry is extended, set or removed."
                )
            return self._confirm_page(
                request,
                license,
                action="resume",
                title="Resume this license?",
                lines=lines,
                submit="Yes, resume the license",
                error=error,
            )

        if not _confirming(request):
            return page()

        def act():
            license_resume(license=license, actor=request.user)
            return "License resumed: it may acquire seats again.", "Resumed."

        return self._once(request, license, "resume", page, act)

    def extend_view(self, request, object_id):
        """Extend by N days from the current expiry (from now if it has passed).
        A perpetual license stays perpetual: only a date makes it expire."""
        license = self._license_for_action(request, object_id)
        days = _field(request, "days", unusable="").strip()
        # isdecimal alone takes digits of other scripts, isdigit even "²".
        valid = days.isascii() and days.isdecimal() and len(days) <= 4 and 1 <= int(days) <= 3660
        if valid and license.expires_at is None:
            messages.warning(
                request,
                "The license is perpetual and stays perpetual: extending adds days to an expiry, "
                "and it has none. Set a date to make it expire.",
            )
            return self._back(license)
        new_expiry, error = None, ""
        if not valid:
            error = "Extend by a whole number of days (1 to 3660)."
        else:
            try:
                new_expiry = max(license.expires_at, timezone.now()) + timedelta(days=int(days))
            except OverflowError:
                error = "That is past the last date the server can store."

        def page(error=""):
            lines = []
            if new_expiry is not None and not error:
                lines.append(f"Expiry moves from {when(license.expires_at)} to {when(new_expiry)}.")
                if license.is_expired():
                    lines.append(
                        f"The license expired {when(license.expires_at)}, so the days count from now: it "
                        "may acquire seats again at once"
                        + (" once it is resumed (it is suspended)." if license.suspended else ".")
                    )
                lines.append(
                    "The days are added when you confirm: if another operator moves the expiry meanwhile, "
                    "they are added to that one."
                )
            return self._confirm_page(
                request,
                license,
                action="extend",
                title="Extend this license?",
                lines=lines,
                inputs=(
                    {
                        "name": "days",
                        "label": "Extend by",
                        "after": "days",
                        "value": days if valid else "",
                        "type": "number",
                        "min": 1,
                        "max": 3660,
                        "size": 5,
                    },
                ),
                hidden=(("described", days if valid else ""),),
                submit="Yes, extend" if valid and not error else "Show the change",
                error=error,
            )

        if error:
            return page(error)
        if not _confirming(request) or request.POST.get("described") != days:
            return page()

        def act():
            extended, changed = license_extend_by_days(license=license, days=int(days), actor=request.user)
            if not changed:  # made perpetual meanwhile
                return "The license is perpetual now and stays perpetual: nothing was extended.", None
            return (
                f"Extended by {_days(int(days))}: the license now expires {when(extended.expires_at)}.",
                f"Expiry extended by {_days(int(days))}: from {when(license.expires_at)} to "
                f"{when(extended.expires_at)}.",
            )

        return self._once(request, license, "extend", page, act)

    def set_expiry_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        exact = _field(request, "expires_at", unusable="\x00").strip()
        error = ""
        try:
            expires_at = _expiry(exact)
        except ValueError as refused:
            expires_at, error = None, str(refused)
        if expires_at is not None and expires_at <= timezone.now():
            error = "The new expiry must be in the future (to stop the license now, suspend it)."
        if not error and expires_at == license.expires_at:
            messages.info(request, f"The license expires {when(expires_at)} already.")
            return self._back(license)

        def page(error=""):
            lines = []
            if not error:
                lines.append(
                    f"Expiry moves from {when(license.expires_at, none=PERPETUAL)} to {when(expires_at)}."
                )
                if license.expires_at is None:
                    lines.append(
                        "The license is perpetual now: with a date it stops accepting checkouts then, and "
                        "its live seats end at their next heartbeat after it."
                    )
            return self._confirm_page(
                request,
                license,
                action="set-expiry",
                title="Set the expiry of this license?",
                lines=lines,
                inputs=(
                    {
                        "name": "expires_at",
                        "label": "Expires",
                        "after": "UTC (YYYY-MM-DD or YYYY-MM-DD HH:MM)",
                        "value": exact if "\x00" not in exact else "",
                        "size": 18,
                        "placeholder": "YYYY-MM-DD HH:MM",
                    },
                ),
                hidden=(("described", "" if error else exact),),
                submit="Show the change" if error else "Yes, set the expiry",
                error=error,
            )

        if error:
            return page(error)
        if not _confirming(request) or request.POST.get("described") != exact:
            return page()

        def act():
            license_extend(license=license, expires_at=expires_at, actor=request.user, how=ExpiryChange.SET)
            return (
                f"The license now expires {when(expires_at)}.",
                f"Expiry set: from {when(license.expires_at, none=PERPETUAL)} to {when(expires_at)}.",
            )

        return self._once(request, license, "set-expiry", page, act)

    def make_perpetual_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        if license.expires_at is None:
            messages.info(request, "The license is already perpetual.")
            return self._back(license)

        def page(error=""):
            lines = [
                f"Expiry moves from {when(license.expires_at)} to never (perpetual): the license never "
                "expires, until a date is set again."
            ]
            if license.is_expired():
                lines.append(
                    f"It expired {when(license.expires_at)}: perpetual, it may acquire seats again at once"
                    + (" once it is resumed (it is suspended)." if license.suspended else ".")
                )
            return self._confirm_page(
                request,
                license,
                action="make-perpetual",
                title="Make this license perpetual?",
                lines=lines,
                submit="Yes, make it perpetual",
                error=error,
            )

        if not _confirming(request):
            return page()

        def act():
            license_make_perpetual(license=license, actor=request.user)
            return (
                "The license is now perpetual: it never expires (set a date to change that).",
                (
                    f"Made perpetual (it had expired {when(license.expires_at)})."
                    if license.is_expired()
                    else f"Made perpetual (it was to expire {when(license.expires_at)})."
                ),
            )

        return self._once(request, license, "make-perpetual", page, act)

    def unbind_view(self, request, object_id):
        license = self._license_for_action(request, object_id)

        def unbind():
            fingerprint = _posted(request, "fingerprint")
            license_unbind_machine(license=license, fingerprint=fingerprint, actor=request.user)
            self._log(request, license, f"Machine {fingerprint[:40]} unbound.")

        return self._run(request, license, unbind, "Machine unbound; its place is free for another machine.")

    def block_view(self, request, object_id):
        """Block a machine or a user: the license page's form and each live
        lease's "block" buttons post here; the confirmation page answers, and
        its "Yes, block" posts again with `confirm` and its one-time token."""
        license = self._license_for_action(request, object_id)
        try:
            kind, value = _posted(request, "kind"), _posted(request, "value").strip()
            reason = _posted(request, "reason").strip()[:200]
        except UnusableInput as error:
            return self._unusable(request, license, error)
        if kind not in BlockKind.ALL or not value:
            messages.error(request, "Name a machine (its fingerprint) or a user (email or id) to block.")
            return self._back(license)
        try:
            # Checked before the confirmation describes it: a block that cannot
            # be is said so here, not after "Yes". A user is then named by id.
            value = block_value(license, kind, value)
        except ApplicationError as error:
            messages.error(request, error.message)
            return self._back(license)

        def page(error=""):
            return self._block_confirmation(
                request, license, kind=kind, value=value, reason=reason, block=True, error=error
            )

        if not _confirming(request):
            return page()

        def act():
            license_block(license=license, kind=kind, value=value, reason=reason, actor=request.user)
            return (
                f"The {kind} is blocked on this license: its live seats were released, and it cannot "
                "acquire again until unblocked.",
                f"Blocked {kind} {value[:60]}" + (f" (reason: {reason})." if reason else "."),
            )

        return self._once(request, license, "block", page, act)

    def unblock_view(self, request, object_id):
        license = self._license_for_action(request, object_id)
        try:
            kind, value = _posted(request, "kind"), _posted(request, "value").strip()
        except UnusableInput as error:
            return self._unusable(request, license, error)
        if kind not in BlockKind.ALL:
            messages.error(request, "A block names a machine or a user.")
            return self._back(license)

        def page(error=""):
            return self._block_confirmation(
                request, license, kind=kind, value=value, reason="", block=False, error=error
            )

        if not _confirming(request):
            if license_block_named(license, kind, value) is None:
                messages.error(request, f"This {kind} is not blocked on the license.")
                return self._back(license)
            return page()

        def act():
            license_unblock(license=license, kind=kind, value=value, actor=request.user)
            return (
                f"The {kind} is unblocked: it may acquire seats of this license again.",
                f"Unblocked {kind} {value[:60]}.",
            )

        return self._once(request, license, "unblock", page, act)

    def _block_confirmation(self, request, license, *, kind, value, reason, block: bool, error: str = ""):
        if error:
            messages.error(request, error)
        email = ""
        if kind == BlockKind.USER and "@" not in value:
            try:
                email = User.objects.filter(pk=uuid.UUID(value)).values_list("email", flat=True).first() or ""
            except ValueError:
                pass
        action = "block" if block else "unblock"
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
            "once": nonce_issue(request, action, license),
            "once_field": NONCE_FIELD,
            "action_url": reverse(f"admin:licenses_license_{action}", args=[license.pk]),
            "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
        }
        return TemplateResponse(
            request, "admin/licenses/license/block_confirm.html", context, status=400 if error else 200
        )

    def regenerate_key_view(self, request, object_id):
        """GET: the confirmation, with a one-time token. Its POST regenerates
        the key once: a second POST with the same token (a double click)
        regenerates nothing and goes to the same page of the key."""
        license = self._license_for_action(request, object_id)

        def page(error=""):
            if error:
                messages.error(request, error)
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": license,
                "title": "Regenerate the license key?",
                "once": nonce_issue(request, "regenerate-key", license),
                "once_field": NONCE_FIELD,
                "change_url": reverse("admin:licenses_license_change", args=[license.pk]),
            }
            return TemplateResponse(
                request, "admin/licenses/license/regenerate_key.html", context, status=400 if error else 200
            )

        if request.method != "POST":
            return page()
        with nonce_claim(request, request.POST.get(NONCE_FIELD, ""), "regenerate-key", license) as claim:
            if claim.used:
                return _see_other(claim.result or reverse("admin:licenses_license_change", args=[license.pk]))
            if not claim.fresh:
                return page(OUT_OF_DATE.replace("Nothing was done", "Nothing was regenerated"))
            previous = license.key_prefix
            license, key = license_regenerate_key(license=license, actor=request.user)
            location = self._key_url(request, license, key, created=False)
            # The key's sealed copy is in the session before the token is
            # released: a second POST waiting on it lands on a page that has it.
            request.session.save()
            request.session.modified = False
            claim.done(location)
        self._log(request, license, f"Key regenerated: {previous}… replaced by {license.key_prefix}….")
        return _see_other(location)

    def email_key_view(self, request, object_id):
        """Email the key to an address: a one-time claim link
        (licenses.mailing.license_delivery_send), never the key itself. The
        claim mints a new key, so the page says the current one then stops
        working. Asks first; its "Yes" sends once (a double click sends one)."""
        license = self._license_for_action(request, object_id)
        try:
            email = _field(request, "email").strip()
        except UnusableInput as error:
            return self._unusable(request, license, error)
        hours = settings.LICENSE_CLAIM_LIFETIME_HOURS

        def page(error=""):
            lines = [
                "A link is emailed to the address below. The email carries no key: the link opens a page "
                "that shows a new key once.",
                f"When the link is claimed, a new key is made and the current key ({license.key_prefix}…) "
                "stops working: every installation that uses it must then be given the new key. Seats in "
                "use stay in use. Until the link is claimed, the current key keeps working.",
                f"The link works once, for {hours} hour{'s' if hours != 1 else ''}.",
            ]
            if license.suspended:
                lines.append("The license is suspended: the new key is refused too until it is resumed.")
            return self._confirm_page(
                request,
                license,
                action="email-key",
                title="Email the key?",
                lines=lines,
                inputs=(
                    {
                        "name": "email",
                        "label": "Email the key to",
                        "type": "email",
                        "value": email,
                        "maxlength": 254,
                        "size": 40,
                    },
                ),
                submit="Yes, email the claim link",
                error=error,
            )

        if not _confirming(request):
            return page()
        try:
            validate_email(email)
        except ValidationError:
            return page(
                "Give an email address to send the link to (like name@example.com). Nothing was sent."
            )

        def act():
            claim = license_delivery_send(
                license=license, email=email, requested_by=request.user.email, actor=request.user
            )
            return (
                f"A claim link was emailed to {claim.email}. The current key works until it is claimed.",
                f"Claim link emailed to {claim.email} (the key is replaced when it is claimed).",
            )

        return self._once(request, license, "email-key", page, act)


PERPETUAL = "never (perpetual)"
# The bulk "extend" action's days.
BULK_EXTEND_DAYS = 30
PERPETUAL_STAYS = "perpetual, and it stays so: extending adds days to an expiry, and it has none"

# What a second POST of a used confirmation, and one of an unknown or old one, are told.
ALREADY_DONE = "That was done already: the confirmation was sent twice, and nothing was changed again."
OUT_OF_DATE = (
    "This confirmation is out of date (open too long, or from another page). Nothing was done: "
    "check what it says and confirm again."
)


def _confirming(request) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _field(request, name: str, *, unusable: str | None = None) -> str:
    """A field of the form (a POST) or of the action's address (a GET); an
    unusable one (NUL, absurd length) raises UnusableInput, or is `unusable`."""
    data = request.POST if request.method == "POST" else request.GET
    value = data.get(name, "")
    if "\x00" in value or len(value) > MAX_POSTED_LENGTH:
        if unusable is None:
            raise UnusableInput(name)
        return unusable
    return value


def _expiry(exact: str) -> datetime:
    """The date the set-expiry form asks for, or ValueError with what to fix.
    A date alone is its midnight; times are UTC unless they say otherwise."""
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
            if expires_at is not None:
                # An offset at the ends of the calendar has no UTC instant
                # ("9999-12-31T23:59-01:00"): that is no date either.
                expires_at = expires_at.astimezone(UTC)
        except (ValueError, OverflowError):
            expires_at = None  # well formed, but no such date ("2025-02-30")
    if expires_at is None:
        raise ValueError("The expiry given is not a date and time (YYYY-MM-DD HH:MM, UTC).")
    return expires_at


def _days(days: int) -> str:
    return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}


def _seconds(seconds: float) -> str:
    count = int(seconds) if float(seconds).is_integer() else seconds
    return ngettext("%(count)s second", "%(count)s seconds", count) % {"count": count}


def _see_other(url: str) -> HttpResponseRedirect:
    """303: the browser follows with a GET, and a reload repeats the GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _csv_response(filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _csv_cell(value):
    """A cell a spreadsheet will not run as a formula: text that starts (after
    any spaces) with a formula character gets a leading quote. Numbers stay."""
    if isinstance(value, int | float) or value is None:
        return "" if value is None else value
    text = str(value)
    return f"'{text}" if text[:1] in _FORMULA_STARTS or text.lstrip(" ")[:1] in _FORMULA_STARTS else text


class _SafeCsvWriter:
    """csv.writer whose every cell goes through _csv_cell: no column, however
    it is filled (a tenant's self-chosen name, a client's request id), can
    carry a formula into the operator's spreadsheet."""

    def __init__(self, response):
        self._writer = csv.writer(response)

    def writerow(self, cells) -> None:
        self._writer.writerow([_csv_cell(cell) for cell in cells])


def _details_text(details) -> str:
    """The details in full, on one line, times in the one format (the CSV)."""
    if not isinstance(details, dict):
        return str(details)
    return "; ".join(f"{key}: {value_text(value)}" for key, value in details.items())


# --- Products and policies ------------------------------------------------------------
# Global: the operator's catalog of editions and the templates licenses are
# made from. Changes are audited like every admin change (audit.admin).


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "policies_column", "updated")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("id", "created", "updated")
    fields = ("id", "name", "slug", "description", "created", "updated")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(policy_count=Count("policies"))

    @admin.display(description="Policies", ordering="policy_count")
    def policies_column(self, product):
        return product.policy_count

    @admin.display(description="Created")
    def created(self, product):
        return when(product.created_at, seconds=True, none="—")

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, product):
        return when(product.updated_at, seconds=True, none="—")


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "product",
        "seats",
        "trial_column",
        "grace_column",
        "maintenance_column",
        "licenses_column",
        "updated",
    )
    list_filter = ("product",)
    list_select_related = ("product",)
    search_fields = ("name", "slug", "product__name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("id", "created", "updated")
    fieldsets = (
        (None, {"fields": ("id", "product", "name", "slug")}),
        (
            "Seats and leases",
            {
                "fields": (
                    "seats",
                    "lease_ttl",
                    "offline_grace",
                    "borrow_limit_hours",
                    "max_machines",
                    "max_unbinds_per_month",
                )
            },
        ),
        (
            "Floating seats",
            {
                "fields": (
                    "overdraft_seats",
                    "linger_seconds",
                    "idle_timeout",
                    "borrow_max_seats",
                    "borrow_max_per_user",
                    "seat_mode",
                    "machines_per_user",
                    "reassign_cooldown_hours",
                    "queue_max_tickets",
                    "queue_ticket_ttl",
                ),
                "description": "Seats past the license's seats (marked overdraft), a released seat kept "
                "for its user and machine, the inactivity that ends a seat, how many seats may be "
                "out on borrow at once, and the queue for a seat (docs/contract.md).",
            },
        ),
        (
            "Time",
            {"fields": ("trial_days", "expiry_grace_days", "maintenance_end", "max_version")},
        ),
        (
            "Entitlement catalog",
            {
                "fields": ("entitlements",),
                "description": 'Codes and their names, e.g. {"pro": "Pro features", "export": "Export"}. '
                "A license grants codes of this catalog (all of them unless it names its own).",
            },
        ),
        (None, {"fields": ("created", "updated")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(license_count=Count("licenses"))

    def has_delete_permission(self, request, obj=None):
        # The default policy is where licenses made without one go; one with
        # licenses cannot go either (PROTECT: the admin says which hold it).
        if obj is not None and obj.slug == DEFAULT_POLICY_SLUG:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Trial")
    def trial_column(self, policy):
        return f"{policy.trial_days} days" if policy.trial_days else "—"

    @admin.display(description="Grace after expiry")
    def grace_column(self, policy):
        return f"{policy.expiry_grace_days} days" if policy.expiry_grace_days else "—"

    @admin.display(description="Maintenance ends", ordering="maintenance_end")
    def maintenance_column(self, policy):
        parts = []
        if policy.maintenance_end:
            parts.append(f"{policy.maintenance_end:%Y-%m-%d}")
        if policy.max_version:
            parts.append(f"up to {policy.max_version}")
        return ", ".join(parts) or "—"

    @admin.display(description="Licenses", ordering="license_count")
    def licenses_column(self, policy):
        url = f"{reverse('admin:licenses_license_changelist')}?policy__id__exact={policy.pk}"
        return format_html('<a href="{}">{}</a>', url, policy.license_count)

    @admin.display(description="Created")
    def created(self, policy):
        return when(policy.created_at, seconds=True, none="—")

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, policy):
        return when(policy.updated_at, seconds=True, none="—")
