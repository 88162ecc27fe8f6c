"""Reads of licenses, always through the tenant-scoped manager."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.cache import ProcessCache
from core.errors import ApplicationError, ServiceUnavailable
from licenses.keys import license_key_digest
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from tenants.scope import tenant_scope


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
        license = License.objects.fetch(key_digest=digest)
    if license is None:
        raise LicenseNotFound("No license with this key.")
    return license


def license_get(*, license_id: uuid.UUID | str, for_update: bool = False) -> License:
    try:
        if for_update:
            license = License.objects.select_for_update().filter(id=license_id).first()
        else:
            license = License.objects.fetch(id=license_id)
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
            return license_get(license_id=license_id)

    return _licenses.get((str(tenant_id), str(license_id)), load)


@receiver([post_save, post_delete], sender=License, dispatch_uid="licenses.selectors.forget")
def license_cache_forget(*, instance: License, **kwargs) -> None:
    _licenses.forget((str(instance.tenant_id), str(instance.pk)))


def license_list() -> list[License]:
    return list(License.objects.order_by("created_at"))


def license_state(license: License) -> str:
    """The one check of whether a license may hold seats: "suspended" (named
    first, whatever its expiry), "expired", or "active"."""
    if license.suspended:
        return "suspended"
    if license.is_expired():
        return "expired"
    return "active"


def license_state_error(license: License) -> ApplicationError | None:
    """The refusal a license's state calls for (None while it is active)."""
    state = license_state(license)
    if state == "suspended":
        return ApplicationError("This license is suspended.", code="license_suspended")
    if state == "expired":
        return ApplicationError(
            "This license has expired.",
            code="license_expired",
            details={"expired_at": license.expires_at.isoformat()},
        )
    return None


def license_status_list(*, user, license_id: str | None = None, license_key: str | None = None) -> list[dict]:
    """Each license's state, seats and live leases: a tenant admin sees every
    lease, anyone else only their own."""
    if license_key:
        licenses = [license_get_by_key(license_key=license_key)]
    elif license_id:
        licenses = [license_get(license_id=license_id)]
    else:
        licenses = license_list()
    seats = seat_ledger()
    sees_all = getattr(user, "is_tenant_admin", False)
    statuses = []
    for license in licenses:
        leases = seats.live_leases(license_id=license.id, tenant_id=license.tenant_id)
        visible = leases if sees_all else [lease for lease in leases if lease.user_id == str(user.pk)]
        statuses.append(
            {
                "id": license.id,
                "name": license.name,
                "key_prefix": license.key_prefix,
                "state": license_state(license),
                "expires_at": license.expires_at,
                "entitlements": license.entitlements,
                "seats": {"used": len(leases), "max": license.max_seats},
                "leases": visible,
            }
        )
    return statuses
