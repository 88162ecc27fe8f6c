"""Seats: acquire, heartbeat, release, borrow, and the expiry sweep.

The ledger keeps the seats; these services put the license's rules in front
of it, sign the token, and leave an audit event for every acquire, denial,
release, borrow, rejected heartbeat and expiry (DESIGN.md invariant 8).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NoReturn

from django.db import connections
from django.utils import timezone

from accounts.selectors import TENANT_INACTIVE, USER_INACTIVE, seat_holder_standing
from audit.events import Detail, Event
from audit.models import AuditLog
from audit.services import audit_record, audit_record_standalone
from core.errors import ApplicationError
from licenses import metrics
from licenses.ledger import Lease, NoSeatsAvailable, SessionNotFound
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from licenses.selectors import (
    LicenseNotFound,
    license_get,
    license_get_by_key,
    license_get_cached,
    license_state_error,
)
from licenses.signing import license_token_issue
from tenants.scope import tenant_scope


@dataclass(frozen=True)
class Checkout:
    """What acquire and borrow hand back: the lease and its signed token."""

    license: License
    lease: Lease
    created: bool
    used: int
    token: str
    token_expires_at: datetime


def _denied(
    error: ApplicationError, *, tenant_id, license: License | None, user, fingerprint: str
) -> ApplicationError:
    """Record a refused acquire (audit and metrics) and hand the error back to raise."""
    audit_record(
        action=Event.LEASE_DENIED,
        tenant_id=tenant_id,
        user=user,
        target=license,
        details={Detail.CODE: error.code, Detail.FINGERPRINT: fingerprint},
    )
    metrics.record_acquire_outcome(error.code)
    return error


def _token_expiry(license: License, lease: Lease, now: datetime) -> datetime:
    """`exp` is the offline grace; a borrowed lease's token lasts exactly to the
    borrow's end (DESIGN.md); neither outlives the license itself."""
    if lease.borrowed_until is not None:
        expires = lease.borrowed_until
    else:
        expires = now + timedelta(seconds=license.offline_grace)
    if license.expires_at is not None:
        expires = min(expires, license.expires_at)
    return expires


def _checkout(license: License, lease: Lease, *, created: bool, used: int) -> Checkout:
    now = timezone.now()
    expires = _token_expiry(license, lease, now)
    token = license_token_issue(license=license, lease=lease, expires_at=expires, now=now)
    return Checkout(
        license=license, lease=lease, created=created, used=used, token=token, token_expires_at=expires
    )


def lease_acquire(
    *,
    user,
    license_key: str,
    fingerprint: str,
    client_info: dict[str, Any] | None = None,
) -> Checkout:
    """Check out a seat, in DESIGN.md's order: the key exists in the caller's
    tenant, the license is not suspended, not expired, the machine is allowed,
    then a seat. Idempotent per (license, user, fingerprint): the live lease
    this user holds on this machine comes back, never another user's."""
    tenant_id = user.tenant_id
    deny = partial(_denied, tenant_id=tenant_id, user=user, fingerprint=fingerprint)
    try:
        license = license_get_by_key(license_key=license_key)
    except LicenseNotFound as error:
        raise deny(error, license=None) from None
    if error := license_state_error(license):
        raise deny(error, license=license)

    binds_machine = False
    if fingerprint not in license.hardware_fingerprints:
        if license.max_machines is None and license.hardware_fingerprints:
            raise deny(
                ApplicationError("This machine is not licensed.", code="fingerprint_not_allowed"),
                license=license,
            )
        if license.max_machines is not None:
            # Binding a new machine: the row lock serialises concurrent binds,
            # so the machine limit holds under any interleaving.
            license = license_get(license_id=license.id, for_update=True)
            if fingerprint not in license.hardware_fingerprints:
                if len(license.hardware_fingerprints) >= license.max_machines:
                    raise deny(
                        ApplicationError(
                            "This license is bound to its maximum number of machines.",
                            code="fingerprint_not_allowed",
                            details={"max_machines": license.max_machines},
                        ),
                        license=license,
                    )
                binds_machine = True

    try:
        result = seat_ledger().acquire(
            license_id=license.id,
            tenant_id=license.tenant_id,
            max_seats=license.max_seats,
            fingerprint=fingerprint,
            user_id=str(user.pk),
            ttl=license.lease_ttl,
            client_info=client_info or {},
        )
    except NoSeatsAvailable as exc:
        raise deny(
            ApplicationError(
                "All seats of this license are in use.",
                code="no_seats_available",
                details={"used": exc.used, "max": exc.max_seats},
            ),
            license=license,
        ) from None

    # Sign first: the audit rows below take the tenant's chain lock, held to
    # commit, and a KMS signature must not be made while holding it.
    checkout = _checkout(license, result.lease, created=result.created, used=result.used)
    if binds_machine:
        license.hardware_fingerprints = [*license.hardware_fingerprints, fingerprint]
        license.save(update_fields=["hardware_fingerprints", "updated_at"])
        audit_record(
            action=Event.LICENSE_MACHINE_BOUND,
            tenant_id=tenant_id,
            user=user,
            target=license,
            details={Detail.FINGERPRINT: fingerprint},
        )
    audit_record(
        action=Event.LEASE_ACQUIRED,
        tenant_id=tenant_id,
        user=user,
        target=license,
        details={
            Detail.SESSION_ID: result.lease.session_id,
            Detail.FINGERPRINT: fingerprint,
            Detail.CREATED: result.created,
        },
    )
    metrics.record_acquire_outcome("granted" if result.created else "existing")
    return checkout


def _leased_license(claims: dict[str, Any]) -> License:
    """The license a token names. The license-token endpoints hold no database
    transaction of their own (a heartbeat on the Redis ledger needs none), so
    this reads through the short per-process cache."""
    try:
        return license_get_cached(license_id=claims["sub"], tenant_id=claims["tid"])
    except LicenseNotFound:
        raise ApplicationError("This session is not live.", code="session_not_found") from None


def _end_lease(license: License, session_id: str, error: ApplicationError) -> NoReturn:
    """End a lease whose holder may no longer hold it, now, with an audit event
    that says why, and refuse the call with `error`."""
    seats = seat_ledger()
    with seats.scope(license.tenant_id):
        try:
            lease = seats.release(license_id=license.id, tenant_id=license.tenant_id, session_id=session_id)
        except SessionNotFound:
            pass
        else:
            audit_record_standalone(
                action=Event.LEASE_ENDED,
                tenant_id=license.tenant_id,
                target=license,
                details={**lease_end_details(lease), Detail.REASON: error.code},
            )
    raise error


def _end_if_license_ended(license: License, session_id: str) -> None:
    """Suspending or expiring a license ends its leases at their next heartbeat."""
    error = license_state_error(license)
    if error is not None:
        _end_lease(license, session_id, error)


_STANDING_ERRORS = {
    USER_INACTIVE: "The user who holds this seat is deactivated or deleted; the seat is released.",
    TENANT_INACTIVE: "This tenant is deactivated; the seat is released.",
}


def _end_if_holder_may_not_hold(license: License, lease: Lease) -> None:
    """Deactivating or deleting the user, or deactivating the tenant, ends the
    user's leases at their next heartbeat or borrow (invariant 11)."""
    standing = seat_holder_standing(user_id=lease.user_id, tenant_id=license.tenant_id)
    if standing:
        _end_lease(license, lease.session_id, ApplicationError(_STANDING_ERRORS[standing], code=standing))


def lease_end_details(lease: Lease) -> dict[str, Any]:
    """What usage rollups need from an event that ends a lease (LEASE_END_FIELDS):
    who held it, and since when (the ledger's clock), so session time needs no
    other row."""
    return {
        Detail.SESSION_ID: lease.session_id,
        Detail.FINGERPRINT: lease.fingerprint,
        Detail.USER_ID: lease.user_id,
        Detail.ACQUIRED_AT: lease.created_at.isoformat(),
    }


def lease_heartbeat(*, claims: dict[str, Any]) -> tuple[License, Lease]:
    license = _leased_license(claims)
    _end_if_license_ended(license, claims["sid"])
    try:
        lease = seat_ledger().heartbeat(
            license_id=license.id,
            tenant_id=license.tenant_id,
            session_id=claims["sid"],
            ttl=license.lease_ttl,
        )
    except SessionNotFound:
        audit_record_standalone(
            action=Event.LEASE_HEARTBEAT_REJECTED,
            tenant_id=license.tenant_id,
            target=license,
            details={Detail.SESSION_ID: claims["sid"], Detail.FINGERPRINT: claims.get("fp", "")},
        )
        raise ApplicationError(
            "This session is not live (expired or released); acquire again.", code="session_not_found"
        ) from None
    _end_if_holder_may_not_hold(license, lease)
    return license, lease


def lease_release(*, claims: dict[str, Any]) -> Lease:
    license = _leased_license(claims)
    seats = seat_ledger()
    with seats.scope(license.tenant_id):
        try:
            lease = seats.release(
                license_id=license.id, tenant_id=license.tenant_id, session_id=claims["sid"]
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live (expired or already released).", code="session_not_found"
            ) from None
        audit_record_standalone(
            action=Event.LEASE_RELEASED,
            tenant_id=license.tenant_id,
            target=license,
            details=lease_end_details(lease),
        )
    return lease


def lease_force_release(*, license: License, session_id: str, actor=None) -> Lease:
    """End a live lease on someone else's behalf (an operator in the admin, a
    tenant admin on the dashboard). The client finds out at its next heartbeat."""
    # The tenant's transaction holds the audit row whichever backend keeps the seat.
    with tenant_scope(license.tenant_id):
        try:
            lease = seat_ledger().release(
                license_id=license.id, tenant_id=license.tenant_id, session_id=session_id
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live (expired or already released).", code="session_not_found"
            ) from None
        audit_record(
            action=Event.LEASE_FORCE_RELEASED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details=lease_end_details(lease),
        )
    return lease


def lease_borrow(*, claims: dict[str, Any], hours: int) -> Checkout:
    license = _leased_license(claims)
    _end_if_license_ended(license, claims["sid"])
    if license.borrow_limit_hours == 0:
        raise ApplicationError("This license does not allow borrowing.", code="permission_denied")
    if hours > license.borrow_limit_hours:
        raise ApplicationError(
            f"This license lets a seat be borrowed for at most {license.borrow_limit_hours} hours.",
            code="invalid_request",
            details={"max_hours": license.borrow_limit_hours},
        )
    seats = seat_ledger()
    # The lease names its holder: one who may no longer hold a seat gets no
    # borrow, and the seat ends now (its own transaction, before the borrow's).
    try:
        live = seats.heartbeat(
            license_id=license.id,
            tenant_id=license.tenant_id,
            session_id=claims["sid"],
            ttl=license.lease_ttl,
        )
    except SessionNotFound:
        raise ApplicationError("This session is not live; acquire again.", code="session_not_found") from None
    _end_if_holder_may_not_hold(license, live)
    with seats.scope(license.tenant_id):
        try:
            lease = seats.borrow(
                license_id=license.id,
                tenant_id=license.tenant_id,
                session_id=claims["sid"],
                seconds=hours * 3600,
                # On the ledger's clock, so neither the borrow nor its token
                # outlives the license (invariant 11).
                not_after=license.expires_at,
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live; acquire again.", code="session_not_found"
            ) from None
        audit_record_standalone(
            action=Event.LEASE_BORROWED,
            tenant_id=license.tenant_id,
            target=license,
            details={
                Detail.SESSION_ID: lease.session_id,
                Detail.HOURS: hours,
                Detail.UNTIL: lease.borrowed_until.isoformat(),
            },
        )
        used = seats.used(license_id=license.id, tenant_id=license.tenant_id)
    return _checkout(license, lease, created=False, used=used)


# --- Expiry sweep (invariant 8) -------------------------------------------------------


def lease_expiry_sweep_license(*, license_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    """Record each lease of one license that ended by expiry, exactly once.

    A per-license lock keeps two sweepers apart; the audit log is checked
    before writing, so a sweep that died between recording and acknowledging
    does not record twice when it runs again.
    """
    seats = seat_ledger()
    with tenant_scope(tenant_id):
        if not _try_sweep_lock(license_id):
            return 0
        pending = seats.expired_pending(license_id=license_id, tenant_id=tenant_id)
        if not pending:
            return 0
        session_ids = [item.lease.session_id for item in pending]
        recorded_session_id = f"details__{Detail.SESSION_ID}"
        already = set(
            AuditLog.objects.filter(action=Event.LEASE_EXPIRED, target_id=str(license_id))
            .filter(**{f"{recorded_session_id}__in": session_ids})
            .values_list(recorded_session_id, flat=True)
        )
        recorded = 0
        for item in pending:
            if item.lease.session_id in already:
                continue
            audit_record(
                action=Event.LEASE_EXPIRED,
                tenant_id=tenant_id,
                target_type="licenses.license",
                target_id=str(license_id),
                details={**lease_end_details(item.lease), Detail.EXPIRED_AT: item.expired_at.isoformat()},
            )
            recorded += 1
    # Forget them only once their records are committed.
    seats.expired_ack(license_id=license_id, tenant_id=tenant_id, session_ids=session_ids)
    return recorded


def _try_sweep_lock(license_id: uuid.UUID) -> bool:
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return True  # SQLite's IMMEDIATE transactions already run one at a time
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"sweep:{license_id}"])
        return cursor.fetchone()[0]
