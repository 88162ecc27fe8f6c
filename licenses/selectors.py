"""Reads of licenses, always through the tenant-scoped manager."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from core.cache import ProcessCache, on_each_commit
from core.errors import ApplicationError, ServiceUnavailable
from core.pagination import InvalidCursor, Page, cursor_decode, cursor_encode, queryset_page
from licenses.keys import license_key_digest
from licenses.ledger.base import LeaseCursorInvalid
from licenses.ledger.gateway import seat_ledger
from licenses.models import License, Policy, Product
from tenants.scope import current_tenant_id, tenant_scope


class LicenseNotFound(ApplicationError):
    code = "license_not_found"


def license_get_by_key(*, license_key: str, for_update: bool = False) -> License:
    """The caller's tenant's license with this key. Another tenant's key is
    `license_not_found`, exactly as an unknown key: the scoped manager (and RLS
    below it) never sees it."""
    digest = license_key_digest(license_key)
    if for_update:
        license = License.objects.select_for_update().filter(key_digest=digest).first()
    else:
        # With its policy, in one statement: the effective terms need both.
        license = License.objects.fetch(related="policy", key_digest=digest)
    if license is None or license.deleted_at is not None:
        # A deleted license (licenses.services.license_delete) is no license.
        raise LicenseNotFound("No license with this key.")
    return license


def license_get(*, license_id: uuid.UUID | str, for_update: bool = False) -> License:
    try:
        if for_update:
            license = License.objects.select_for_update().filter(id=license_id).first()
        else:
            license = License.objects.fetch(related="policy", id=license_id)
    except (ValidationError, ValueError):
        license = None
    if license is None:
        raise LicenseNotFound("No such license.")
    return license


# The license-token endpoints (heartbeat above all) read a license's state on
# every call. A short per-process cache keeps the database off that path; a save
# in this process forgets the entry at once, and other processes see a change
# within LICENSE_CACHE_SECONDS, far inside a heartbeat interval.
_licenses: ProcessCache[License] = ProcessCache(
    lambda: settings.LICENSE_CACHE_SECONDS,
    stale_on=(DatabaseError, ServiceUnavailable),
    stale_limit=lambda: settings.LICENSE_CACHE_STALE_IF_ERROR_SECONDS,
)


def license_get_cached(*, license_id: uuid.UUID | str, tenant_id: uuid.UUID | str) -> License:
    """A license by id, as of at most LICENSE_CACHE_SECONDS ago. Opens its own
    tenant scope on a miss: the caller (a license-token endpoint) holds none."""

    def load() -> License:
        with tenant_scope(tenant_id):
            # A cached row is never changed in place: its terms stand.
            return license_get(license_id=license_id).terms_freeze()

    return _licenses.get((str(tenant_id), str(license_id)), load)


# Acquire names its license by key: which license a key names is kept as
# briefly, in the caller's tenant, and the row comes from the cache above. An
# entry is checked against that row on every use, so a key changed or a
# license deleted (in any process, within the row's age) no longer matches.
_license_ids_by_key: ProcessCache[str] = ProcessCache(lambda: settings.LICENSE_CACHE_SECONDS)


def license_get_by_key_cached(*, license_key: str) -> License:
    """The caller's tenant's license with this key, as license_get_by_key
    finds it, as of at most LICENSE_CACHE_SECONDS ago. A shared, frozen row:
    callers read it and never change it."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise LicenseNotFound("No license with this key.")
    digest = license_key_digest(license_key)
    key = (str(tenant_id), digest)

    def load() -> License:
        # One read: the row found by its key is the by-id cache's too.
        found = license_get_by_key(license_key=license_key).terms_freeze()
        _licenses.put((str(tenant_id), str(found.pk)), found)
        return found

    license_id = _license_ids_by_key.get(key, lambda: str(load().pk))
    try:
        license = license_get_cached(license_id=license_id, tenant_id=tenant_id)
    except LicenseNotFound:
        license = None
    if license is None or license.key_digest != digest or license.deleted_at is not None:
        _license_ids_by_key.forget(key)
        license = load()
    return license


@receiver([post_save, post_delete], sender=License, dispatch_uid="licenses.selectors.forget")
def license_cache_forget(*, instance: License, **kwargs) -> None:
    """Forget the license now and again when the change commits: another
    thread of this process (gthread workers) that reads the row before the
    commit would keep the old one for the cache's age."""
    key = (str(instance.tenant_id), str(instance.pk))
    _licenses.forget(key)
    on_each_commit(lambda: _licenses.forget(key))


@receiver([post_save, post_delete], sender=Policy, dispatch_uid="licenses.selectors.forget_policy")
@receiver([post_save, post_delete], sender=Product, dispatch_uid="licenses.selectors.forget_product")
def license_cache_forget_terms(**kwargs) -> None:
    """A policy or product changed: every cached license's terms may have."""
    _licenses.clear()
    on_each_commit(_licenses.clear)


def license_list() -> list[License]:
    return list(
        License.objects.filter(deleted_at__isnull=True).select_related("policy").order_by("created_at")
    )


def license_page(*, cursor: str | None, limit: int) -> Page:
    """One page of the tenant's licenses, oldest first, as license_list orders them."""
    return queryset_page(
        License.objects.filter(deleted_at__isnull=True).select_related("policy"),
        kind="licenses",
        order=("created_at", "id"),
        cursor=cursor,
        limit=limit,
    )


def license_state(license: License) -> str:
    """The one check of whether a license may hold seats: "suspended" (named
    first, whatever its expiry), "expired" (past its end and its policy's
    grace after it), "grace" (past its end, inside the grace: it still holds
    seats), or "active"."""
    if license.suspended:
        return "suspended"
    terms = license.terms
    now = timezone.now()
    if terms.is_expired(now):
        return "expired"
    if terms.in_grace(now):
        return "grace"
    return "active"


def license_state_error(license: License) -> ApplicationError | None:
    """The refusal a license's state calls for (None while it is active)."""
    state = license_state(license)
    if state == "suspended":
        return ApplicationError("This license is suspended.", code="license_suspended")
    if state == "expired":
        details = {"expired_at": license.expires_at.isoformat()}
        if (grace_until := license.terms.grace_until) is not None:
            details["grace_until"] = grace_until.isoformat()
        return ApplicationError("This license has expired.", code="license_expired", details=details)
    return None


# The all-licenses status answer pages licenses; each carries the first few
# of its leases (and the cursor to page the rest with its license named), so
# the answer stays bounded by `limit` times this, never by the leases held.
STATUS_LEASES_PER_LICENSE_IN_LIST = 10


def license_status_page(
    *,
    user,
    limit: int,
    cursor: str | None = None,
    license_id: uuid.UUID | str | None = None,
    license_key: str | None = None,
) -> dict:
    """The status answer: {"licenses": [...], "next_cursor": ...}.

    With one license named (by id or key), its state, seat counts and one
    page of the live leases the user may see (a tenant admin every lease,
    anyone else only their own): `cursor` and `next_cursor` page its leases.
    Without, a page of the tenant's licenses (oldest first), each with its
    counts and first leases: `cursor` and `next_cursor` page the licenses.
    Seat counts always count every lease."""
    if license_key or license_id:
        # The short per-process cache's rows, as acquire reads them.
        license = (
            license_get_by_key_cached(license_key=license_key)
            if license_key
            else license_get_cached(license_id=license_id, tenant_id=current_tenant_id())
        )
        if license.deleted_at is not None:
            raise LicenseNotFound("No such license.")
        lease_cursor = _lease_cursor_decode(cursor, license) if cursor is not None else None
        status = _license_status(license, user=user, lease_cursor=lease_cursor, limit=limit)
        return {"licenses": [status], "next_cursor": status["leases_next_cursor"]}
    page = license_page(cursor=cursor, limit=limit)
    statuses = [
        _license_status(license, user=user, lease_cursor=None, limit=STATUS_LEASES_PER_LICENSE_IN_LIST)
        for license in page.items
    ]
    return {"licenses": statuses, "next_cursor": page.next_cursor}


def _license_status(license: License, *, user, lease_cursor: str | None, limit: int) -> dict:
    seats = seat_ledger()
    ids = {"license_id": license.id, "tenant_id": license.tenant_id}
    sees_all = getattr(user, "is_tenant_admin", False)
    try:
        leases, next_lease_cursor = seats.live_leases_page(
            **ids, cursor=lease_cursor, limit=limit, user_id=None if sees_all else str(user.pk)
        )
    except LeaseCursorInvalid:
        raise InvalidCursor() from None
    terms = license.terms
    return {
        "id": license.id,
        "name": license.name,
        "key_prefix": license.key_prefix,
        "state": license_state(license),
        "expires_at": license.expires_at,
        "grace_until": terms.grace_until,
        "policy": license.policy.slug,
        "entitlements": terms.entitlements,
        "seats": {"used": seats.used(**ids, per_user=terms.seats_per_user), "max": terms.max_seats},
        "leases": leases,
        "leases_next_cursor": (
            cursor_encode("leases", [str(license.id), next_lease_cursor]) if next_lease_cursor else None
        ),
    }


def _lease_cursor_decode(cursor: str, license: License) -> str:
    """The ledger's own cursor inside a status cursor, which also names its
    license: a cursor of another license (or of another list) is refused."""
    license_id, ledger_cursor = cursor_decode(cursor, "leases", size=2)
    if license_id != str(license.id) or not isinstance(ledger_cursor, str):
        raise InvalidCursor()
    return ledger_cursor


# --- Self-service unbinds (issue 16): the monthly cap -------------------------------------
# Counted from the audit log: each unbind a tenant admin makes is a
# `license.machine_unbound` row with `via` "dashboard", written in the same
# transaction as the unbind, under the license row's lock, so two unbinds at
# once count each other (the second reads after the first has committed).
UNBIND_VIA_DASHBOARD = "dashboard"


def unbind_month(now=None) -> tuple:
    """The current calendar month (UTC): its first moment and the next month's."""
    from datetime import UTC

    now = (now or timezone.now()).astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def license_unbinds_this_month(*, license: License, now=None) -> int:
    """The machines tenant admins unbound from the license this calendar month
    (UTC); an operator's unbinds (the admin site) do not count."""
    from audit.events import Event
    from audit.models import AuditLog

    start, end = unbind_month(now)
    return AuditLog.objects.filter(
        tenant_id=license.tenant_id,
        target_type=License._meta.label_lower,
        target_id=str(license.pk),
        action=Event.LICENSE_MACHINE_UNBOUND,
        created_at__gte=start,
        created_at__lt=end,
        details__via=UNBIND_VIA_DASHBOARD,
    ).count()
