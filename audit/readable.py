"""The audit log as a support person reads it: actions in words, targets and
people named (not UUIDs), details written out with times in the console's one
format (core.dates.when) and "—" for none.

What a row points at (its target, its user, ids in its details) is looked up
in one query per kind of object for a whole page of rows (`References`), by
model label through the app registry: the audit app stands below `accounts`
and `licenses` and imports neither.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import router
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from audit.events import Detail, Event
from audit.models import AuditLog
from core.dates import moment_in, when

NONE = "—"
# The list and the tenant page cut the details at this many characters (the row's page has them all).
AUDIT_DETAILS_SHOWN = 200

USER = "accounts.user"
LICENSE = "licenses.license"
TENANT = "tenants.tenant"
INVITE = "accounts.invite"

ACTION_WORDS: dict[str, str] = {
    Event.TENANT_CREATED: "Tenant created",
    Event.USER_REGISTERED: "User registered",
    Event.USER_IDENTITY_LINKED: "Sign-in identity linked to the user",
    Event.INVITE_CREATED: "Invite created",
    Event.INVITE_REDEEMED: "Invite redeemed",
    Event.INVITE_REVOKED: "Invite revoked",
    Event.INVITE_RESENT: "Invite sent again (a new code; the old one no longer works)",
    Event.USER_ROLE_CHANGED: "Role changed",
    Event.USER_DEACTIVATED: "User deactivated (their sign-ins and seats end)",
    Event.USER_REACTIVATED: "User reactivated",
    Event.AUTH_LOGIN: "Signed in",
    Event.AUTH_LOGIN_FAILED: "Sign-in failed",
    Event.AUTH_REFRESH_REUSED: "A used refresh token came back (its sign-in was ended)",
    Event.AUTH_LOGOUT: "Signed out",
    Event.AUTH_PASSWORD_CHANGED: "Password changed",
    Event.AUTH_SIGN_INS_ENDED: "Every sign-in ended",
    Event.USER_LOGIN_THROTTLED: "Sign-in throttled after repeated failures",
    Event.USER_UNLOCKED: "Sign-in throttle lifted",
    Event.LICENSE_CREATED: "License created",
    Event.LICENSE_UPDATED: "License changed",
    Event.LICENSE_SUSPENDED: "License suspended",
    Event.LICENSE_RESUMED: "License resumed",
    Event.LICENSE_EXTENDED: "License expiry changed",
    Event.LICENSE_KEY_REGENERATED: "License key regenerated",
    Event.LICENSE_MACHINE_BOUND: "Machine bound to the license",
    Event.LICENSE_MACHINE_UNBOUND: "Machine unbound from the license",
    Event.LICENSE_BLOCKED: "Blocked on the license",
    Event.LICENSE_UNBLOCKED: "Unblocked on the license",
    Event.LEASE_ACQUIRED: "Seat taken",
    Event.LEASE_DENIED: "Seat refused",
    Event.LEASE_HEARTBEAT_REJECTED: "Heartbeat refused",
    Event.LEASE_BORROWED: "Seat borrowed for offline use",
    Event.LEASE_BORROW_UNDONE: "Borrow undone (the seat is as it was before)",
    Event.LEASE_RELEASED: "Seat released",
    Event.LEASE_FORCE_RELEASED: "Seat released from the console or the dashboard",
    Event.LEASE_ENDED: "Seat ended by the server",
    Event.LEASE_EXPIRED: "Seat expired (no heartbeat in time)",
    Event.LEASE_LOST: "Seat lost with the seat ledger's state",
    Event.LEASE_LINGER_ENDED: "Released seat's linger ended (nobody took it back)",
    Event.LEASE_IDLE_RELEASED: "Seat ended: its user was idle too long",
    Event.LEASE_QUEUED: "Queued for a seat",
    Event.ADMIN_ADDED: "Added in the console",
    Event.ADMIN_CHANGED: "Changed in the console",
    Event.ADMIN_DELETED: "Deleted in the console",
    Event.API_KEY_CREATED: "API key made",
    Event.API_KEY_REVOKED: "API key revoked",
    Event.LICENSE_DELETED: "License deleted",
    Event.TENANT_UPDATED: "Tenant changed",
    Event.TENANT_SUSPENDED: "Tenant suspended",
    Event.TENANT_RESUMED: "Tenant resumed",
    Event.TENANT_DELETED: "Tenant deleted",
    Event.LICENSE_DELIVERY_SENT: "License key sent as a claim link",
    Event.LICENSE_CLAIMED: "License claim link used",
    Event.LICENSE_EXPIRING_SOON: "Told the admins the license expires soon",
    Event.LICENSE_SEATS_NEAR_LIMIT: "Told the admins the seats are nearly all taken",
    Event.LICENSE_OVERDRAFT: "Seats granted past the limit (overdraft)",
    Event.LICENSE_SEAT_ASSIGNED: "Named seat given to a user",
    Event.LICENSE_SEAT_UNASSIGNED: "Named seat taken back from a user",
    Event.LICENSE_SEAT_RULES_CHANGED: "Seat group rules changed",
    Event.AUTH_PASSWORD_RESET_REQUESTED: "Password reset asked for",
    Event.AUTH_PASSWORD_RESET: "Password reset",
    Event.WEBHOOK_ENDPOINT_CREATED: "Webhook endpoint made",
    Event.WEBHOOK_ENDPOINT_UPDATED: "Webhook endpoint changed",
    Event.WEBHOOK_ENDPOINT_DELETED: "Webhook endpoint removed",
    Event.WEBHOOK_ENDPOINT_DISABLED: "Webhook endpoint disabled after failures",
    Event.WEBHOOK_REDELIVERED: "Webhook delivery sent again",
    Event.WEBHOOK_PINGED: "Webhook endpoint pinged",
    Event.BILLING_CHECKOUT_COMPLETED: "Stripe checkout made a license",
    Event.BILLING_PAYMENT_FAILED: "Stripe payment failed (license suspended after the grace)",
    Event.BILLING_PAYMENT_RECOVERED: "Stripe invoice paid after a failed payment",
    Event.REPORT_EMAILED: "Monthly usage report emailed to the admins",
}

DETAIL_WORDS: dict[str, str] = {
    Detail.SESSION_ID: "Session",
    Detail.FINGERPRINT: "Machine (fingerprint)",
    Detail.USER_ID: "User",
    Detail.FAMILY_ID: "Sign-in (token family)",
    Detail.CODE: "Code",
    Detail.REVOKED: "Tokens revoked",
    Detail.EVENT_ID: "Ledger event",
    Detail.OCCURRED_AT: "Happened at (ledger clock)",
    "key_prefix": "Key prefix",
    "previous_prefix": "Previous key prefix",
    "invite_id": "Invite",
    "retry_after": "Retry after (seconds)",
    "object": "Object",
    "change": "Change",
}

# Detail fields that hold the id of an object, by the object's model.
DETAIL_REFERENCES: dict[str, str] = {
    Detail.USER_ID: USER,
    "license_id": LICENSE,
    "invite_id": INVITE,
}


def action_text(action: str) -> str:
    return ACTION_WORDS.get(action) or capfirst(action.replace(".", ": ").replace("_", " "))


def detail_label(name: str) -> str:
    return DETAIL_WORDS.get(name) or capfirst(str(name).replace("_", " "))


def _referenced(details, name: str) -> str | None:
    """The model whose id a detail field holds: a fixed name, or a block's
    `value` when its `kind` is user."""
    if name in DETAIL_REFERENCES:
        return DETAIL_REFERENCES[name]
    if name == "value" and isinstance(details, dict) and details.get("kind") == "user":
        return USER
    return None


def _label_of(label: str, obj) -> str:
    if label == LICENSE:
        return f"License {obj}"  # its product name and key prefix: "License Acme Pro CDT-7K2QF…"
    if label == USER:
        return f"User {obj.email}"
    if label == TENANT:
        return f"Tenant {obj.name} ({obj.slug})"
    if label == INVITE:
        to = f"for {obj.email}" if obj.email else "for any email"
        return f"Invite {to}, role {obj.role}, expiring {when(obj.expires_at)}"
    return f"{capfirst(obj._meta.verbose_name)} {obj}"


def console_url(obj) -> str | None:
    """The object's page in the console, if its model has one."""
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


class References:
    """The objects a page of audit rows points at: targets, users (the rows'
    and those named in details), one query per model."""

    def __init__(self, rows: Iterable[AuditLog], *, people: bool = False, details: bool = False) -> None:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            if row.target_type and row.target_id:
                wanted.setdefault(row.target_type, set()).add(row.target_id)
            if people and row.user_id:
                wanted.setdefault(USER, set()).add(str(row.user_id))
            if details and isinstance(row.details, dict):
                for name, value in row.details.items():
                    model = _referenced(row.details, name)
                    if model and isinstance(value, str) and value:
                        wanted.setdefault(model, set()).add(value)
        self.objects: dict[tuple[str, str], object] = {}
        for label, ids in wanted.items():
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                continue
            keys = []
            for value in ids:
                try:
                    keys.append(model._meta.pk.to_python(value))
                except ValidationError:
                    pass
            if not keys:
                continue
            manager = getattr(model, "unscoped", None) or model._default_manager
            for obj in manager.using(router.db_for_read(AuditLog)).filter(pk__in=keys):
                self.objects[(label, str(obj.pk))] = obj

    def get(self, label: str, pk) -> object | None:
        return self.objects.get((label, str(pk)))

    def user_email(self, pk) -> str | None:
        user = self.get(USER, pk)
        return getattr(user, "email", None)


class TargetLabels:
    """Names for a page of targets, one query per kind (licenses, tenants,
    users), so the list says "License Acme Pro CDT-7K2QF…", not a UUID."""

    def __init__(self, rows, references: References | None = None) -> None:
        self.references = references if references is not None else References(rows)

    def __call__(self, row) -> str:
        if not row.target_type:
            return NONE
        obj = self.references.get(row.target_type, row.target_id)
        if obj is None:
            return f"{row.target_type} {row.target_id}"
        return _label_of(row.target_type, obj)

    def link(self, row) -> str:
        """The target named, linked to its console page where it has one."""
        text = self(row)
        obj = self.references.get(row.target_type, row.target_id) if row.target_type else None
        url = console_url(obj) if obj is not None else None
        return format_html('<a href="{}">{}</a>', url, text) if url else text


def who(row: AuditLog, references: References) -> str:
    """Who did it: a user's email (an operator's marked so); the email given
    when no account signed in (a failed sign-in); an API client (a request
    with no user: a client's heartbeat or release, by its lease token); or
    the system (a sweep, the drainer, the server itself)."""
    if row.user_id:
        user = references.get(USER, row.user_id)
        if user is None:
            return f"{row.actor or 'a user'} (account since deleted)"
        if getattr(user, "is_staff", False) and getattr(user, "tenant_id", None) is None:
            return f"{user.email} (operator)"
        return user.email
    if row.actor:
        return f"{row.actor} (not signed in)"
    if row.request_id.startswith(TASK_REQUEST_PREFIX):  # coditect.celery: a task's own context
        swept = row.action in (Event.LEASE_EXPIRED, Event.LEASE_LINGER_ENDED)
        return "server (expiry sweep)" if swept else "server (background task)"
    if row.request_id:
        return "API client (no signed-in user)"
    return "system"


# The request id a background task's rows carry (coditect/celery.py).
TASK_REQUEST_PREFIX = "task-"


def tenant_link(row: AuditLog) -> str:
    if row.tenant_id is None:
        return "— (operator: no tenant)"
    tenant = row.tenant
    return format_html(
        '<a href="{}">{} ({})</a>',
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        tenant.name,
        tenant.slug,
    )


# How deep a detail value is followed; deeper is "…" (a JSON field an
# operator saved may nest far deeper than a page needs, or Python's stack allows).
DETAIL_DEPTH_SHOWN = 6


def _when_seconds(moment) -> str:
    return when(moment, seconds=True)


def value_text(value, _depth: int = 0, *, moment_text: Callable[[datetime], str] | None = None) -> str:
    """One detail value as text: times in the one format (or as `moment_text`
    writes them: the dashboard's, in the viewer's zone), None as "—"."""
    moment_text = moment_text or _when_seconds
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        moment = moment_in(value)
        return moment_text(moment) if moment is not None else value
    if isinstance(value, dict | list) and _depth >= DETAIL_DEPTH_SHOWN:
        return "…"

    def inner(item) -> str:
        return value_text(item, _depth + 1, moment_text=moment_text)

    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{inner(value['from'])} → {inner(value['to'])}"
        return "; ".join(f"{key}: {inner(item)}" for key, item in value.items()) or NONE
    if isinstance(value, list):
        return ", ".join(inner(item) for item in value) or NONE
    return str(value)


def _change_text(value) -> str:
    """An admin change message (Django's JSON list) in Django's own words."""
    if isinstance(value, list):
        try:
            text = LogEntry(change_message=json.dumps(value)).get_change_message()
        except (KeyError, AttributeError, TypeError, ValueError):  # not in Django's shape
            return value_text(value)
        return text or "No fields changed."
    return value_text(value)


def detail_rows(row: AuditLog, references: References) -> list[tuple[str, str]]:
    """(label, text or link) for each detail field of a row, in its order."""
    details = row.details
    if not details:
        return []
    if not isinstance(details, dict):
        return [("Details", value_text(details))]
    shown = []
    for name, value in details.items():
        model = _referenced(details, name)
        obj = references.get(model, value) if model and isinstance(value, str) and value else None
        if obj is not None:
            text = obj.email if model == USER else _label_of(model, obj)
            url = console_url(obj)
            cell = format_html('<a href="{}">{}</a>', url, text) if url else text
        elif model == USER and isinstance(value, str) and _is_uuid(value):
            cell = f"{value} (no such user now)"
        elif name == "change" and row.action in (Event.ADMIN_ADDED, Event.ADMIN_CHANGED, Event.ADMIN_DELETED):
            cell = _change_text(value)
        else:
            cell = value_text(value)
        shown.append((detail_label(name), cell))
    return shown


def _referenced_text(details: dict, name: str, value, references: References | None, moment_text=None) -> str:
    model = _referenced(details, name)
    obj = references.get(model, value) if references and model and isinstance(value, str) and value else None
    if obj is None:
        return value_text(value, moment_text=moment_text)
    return obj.email if model == USER else _label_of(model, obj)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def details_text(
    details,
    references: References | None = None,
    *,
    labels: bool = False,
    moment_text: Callable[[datetime], str] | None = None,
) -> str:
    """The details on one line ("reason: …; user: ada@example.com; acquired at:
    2026-12-02 05:41:07 UTC"), cut at AUDIT_DETAILS_SHOWN characters; users
    and other objects the `references` hold are named, not given as ids.
    `labels`: each field by its label in words ("Machine (fingerprint): …"),
    not its key; `moment_text`: how a time is written (default: the one format)."""
    if not details:
        return NONE
    if isinstance(details, dict):
        text = "; ".join(
            f"{detail_label(key) if labels else key}: "
            f"{_referenced_text(details, key, value, references, moment_text)}"
            for key, value in details.items()
        )
    else:
        text = value_text(details, moment_text=moment_text)
    return text if len(text) <= AUDIT_DETAILS_SHOWN else f"{text[: AUDIT_DETAILS_SHOWN - 1]}…"


def row_page(row: AuditLog) -> dict:
    """What the row's own page shows, each a (label, text or link) pair."""
    references = References([row], people=True, details=True)
    labels = TargetLabels([row], references)
    fields = [
        ("When", when(row.created_at, seconds=True)),
        ("Action", format_html("{} <code>{}</code>", action_text(row.action), row.action)),
        ("Who", who(row, references)),
        ("Tenant", tenant_link(row)),
        ("Target", labels.link(row)),
        ("Request id", row.request_id or NONE),
        ("Client IP", row.ip_address or NONE),
    ]
    return {
        "audit_fields": fields,
        "audit_details": detail_rows(row, references),
        "audit_title": f"{action_text(row.action)}, {when(row.created_at, seconds=True)}",
        "audit_chain": {"hash": row.hash, "prev_hash": row.prev_hash},
    }
