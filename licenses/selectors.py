"""Reads of licenses, always through the tenant-scoped manager."""

from __future__ import annotations

import uuid

from licenses.keys import license_key_digest
from licenses.models import License
from tenants.errors import ApplicationError


class LicenseNotFound(ApplicationError):
    code = "license_not_found"


def license_get_by_key(*, license_key: str, for_update: bool = False) -> License:
    """The caller's tenant's license with this key. Another tenant's key is
    `license_not_found`, exactly as an unknown key: the scoped manager (and RLS
    below it) never sees it."""
    queryset = License.objects.all()
    if for_update:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(key_digest=license_key_digest(license_key))
    except License.DoesNotExist:
        raise LicenseNotFound("No license with this key.") from None


def license_get(*, license_id: uuid.UUID | str, for_update: bool = False) -> License:
    queryset = License.objects.all()
    if for_update:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(id=license_id)
    except (License.DoesNotExist, ValueError):
        raise LicenseNotFound("No such license.") from None


def license_list() -> list[License]:
    return list(License.objects.order_by("created_at"))


def license_state(license: License) -> str:
    if license.suspended:
        return "suspended"
    if license.is_expired():
        return "expired"
    return "active"


def license_status_list(*, user, license_key: str | None = None) -> list[dict]:
    """Each license's state, seats and live leases: a tenant admin sees every
    lease, anyone else only their own."""
    from licenses.ledger import LedgerUnavailable, get_seat_ledger
    from tenants.errors import ServiceUnavailable

    licenses = [license_get_by_key(license_key=license_key)] if license_key else license_list()
    ledger = get_seat_ledger()
    sees_all = getattr(user, "is_tenant_admin", False)
    statuses = []
    for license in licenses:
        try:
            leases = ledger.live_leases(license_id=license.id)
        except LedgerUnavailable as exc:
            raise ServiceUnavailable("The seat ledger does not answer; try again shortly.") from exc
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
