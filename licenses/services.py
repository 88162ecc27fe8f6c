"""Writes to licenses. Every one leaves an audit row in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction

from audit.services import audit_record
from licenses.keys import generate_license_key, license_key_digest, license_key_display_prefix
from licenses.models import License
from tenants.models import Tenant
from tenants.scope import tenant_scope


def license_create(
    *,
    tenant: Tenant,
    max_seats: int,
    name: str = "",
    expires_at: datetime | None = None,
    lease_ttl: int | None = None,
    offline_grace: int | None = None,
    borrow_limit_hours: int | None = None,
    fingerprints: Iterable[str] = (),
    max_machines: int | None = None,
    entitlements: dict[str, Any] | None = None,
    actor: Any = None,
) -> tuple[License, str]:
    """Create a license; return it and its key. The key exists only in this
    return value: the database keeps its digest."""
    if max_seats < 1:
        raise ValueError("max_seats must be at least 1")
    key = generate_license_key()
    fields: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "key_digest": license_key_digest(key),
        "key_prefix": license_key_display_prefix(key),
        "max_seats": max_seats,
        "expires_at": expires_at,
        "hardware_fingerprints": sorted(set(fingerprints)),
        "max_machines": max_machines,
        "entitlements": entitlements or {},
    }
    for field, value in (
        ("lease_ttl", lease_ttl),
        ("offline_grace", offline_grace),
        ("borrow_limit_hours", borrow_limit_hours),
    ):
        if value is not None:
            fields[field] = value
    with tenant_scope(tenant.id), transaction.atomic():
        license = License(**fields)
        license.full_clean(exclude=["tenant", "key_digest"])
        license.save(force_insert=True)
        audit_record(
            action="license.created",
            tenant_id=tenant.id,
            user=actor,
            target=license,
            details={"key_prefix": license.key_prefix, "max_seats": max_seats},
        )
    return license, key
