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
import os
import secrets
import time
import uuid
from datetime import UTC, datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_POST

from accounts.models import User
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


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "name", "tenant", "max_seats", "expires_at", "suspended")
    list_filter = ("suspended",)
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
    return "never" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
