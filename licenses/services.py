"""Writes to licenses. Every one leaves an audit row in the same transaction."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from audit.events import Event
from audit.services import audit_record
from licenses.keys import generate_license_key, license_key_digest, license_key_display_prefix
from licenses.models import FINGERPRINT, NOTIFICATION_FIELDS, License, Policy, SeatMode
from tenants.models import Tenant
from tenants.scope import tenant_scope


def license_create(
    *,
    tenant: Tenant,
    max_seats: int | None = None,
    name: str = "",
    policy: Policy | None = None,
    expires_at: datetime | None = None,
    lease_ttl: int | None = None,
    offline_grace: int | None = None,
    borrow_limit_hours: int | None = None,
    fingerprints: Iterable[str] = (),
    max_machines: int | None = None,
    max_unbinds_per_month: int | None = None,
    overdraft_seats: int | None = None,
    linger_seconds: int | None = None,
    idle_timeout: int | None = None,
    borrow_max_seats: int | None = None,
    borrow_max_per_user: int | None = None,
    seat_mode: str = "",
    machines_per_user: int | None = None,
    queue_max_tickets: int | None = None,
    queue_ticket_ttl: int | None = None,
    entitlements: Iterable[str] | dict[str, Any] | None = None,
    actor: Any = None,
    trial: bool = True,
) -> tuple[License, str]:
    """Create a license from a policy (the default policy without one); return
    it and its key. The key exists only in this return value: the database
    keeps its digest.

    Without `max_seats`, the policy's seats; without `expires_at` (and unless
    `trial=False`: a paid subscription's license runs until it ends), a trial
    policy's length from now (else perpetual). The other terms given here
    are overrides; those left out stay empty and follow the policy.
    `entitlements` are codes of the policy's catalog (a list, or a
    {code: true} object); None grants the whole catalog."""
    from django.utils import timezone

    from licenses.terms import entitlements_from_codes

    policy = policy or Policy.default()
    if max_seats is None:
        max_seats = policy.seats
    if max_seats < 1:
        raise ValueError("max_seats must be at least 1")
    if expires_at is None and policy.trial_days and trial:
        expires_at = timezone.now() + timedelta(days=policy.trial_days)
    if entitlements is not None:
        if isinstance(entitlements, dict):
            if any(value is not True for value in entitlements.values()):
                raise ValueError('Entitlements are codes of the policy\'s catalog: {"code": true, ...}.')
            entitlements = list(entitlements)
        elif isinstance(entitlements, str):
            raise ValueError("Entitlements are a list of codes of the policy's catalog.")
        entitlements = entitlements_from_codes(policy, entitlements)
    key = generate_license_key()
    fields: dict[str, Any] = {
        "tenant": tenant,
        "policy": policy,
        "name": name,
        "key_digest": license_key_digest(key),
        "key_prefix": license_key_display_prefix(key),
        "max_seats": max_seats,
        "expires_at": expires_at,
        "hardware_fingerprints": sorted(set(fingerprints)),
        "max_machines": max_machines,
        "max_unbinds_per_month": max_unbinds_per_month,
        "entitlements": entitlements,
        "lease_ttl": lease_ttl,
        "offline_grace": offline_grace,
        "borrow_limit_hours": borrow_limit_hours,
        "overdraft_seats": overdraft_seats,
        "linger_seconds": linger_seconds,
        "idle_timeout": idle_timeout,
        "borrow_max_seats": borrow_max_seats,
        "borrow_max_per_user": borrow_max_per_user,
        "seat_mode": seat_mode,
        "machines_per_user": machines_per_user,
        "queue_max_tickets": queue_max_tickets,
        "queue_ticket_ttl": queue_ticket_ttl,
    }
    with tenant_scope(tenant.id), transaction.atomic():
        license = License(**fields)
        license.full_clean(exclude=["tenant", "key_digest"])
        license.save(force_insert=True)
        audit_record(
            action=Event.LICENSE_CREATED,
            tenant_id=tenant.id,
            user=actor,
            target=license,
            details={"key_prefix": license.key_prefix, "max_seats": max_seats, "policy": policy.slug},
        )
    return license, key


# --- Operator actions (admin site and services alike) ------------------------------
# Each takes the license as loaded by the caller (in whatever scope), opens its
# tenant's scope, locks the row, changes it and leaves an audit row in the same
# transaction.


def _locked(license: License) -> License:
    from licenses.selectors import license_get

    return license_get(license_id=license.pk, for_update=True)


def license_suspend(*, license: License, actor: Any = None, reason: str = "") -> License:
    """Refuse new seats; live leases end at their next heartbeat (invariant 6)."""
    details = {"reason": reason} if reason else {}
    return _set_suspended(license, True, Event.LICENSE_SUSPENDED, actor=actor, details=details)


def license_resume(*, license: License, actor: Any = None) -> License:
    return _set_suspended(license, False, Event.LICENSE_RESUMED, actor=actor)


def _set_suspended(
    license: License, suspended: bool, action: str, *, actor: Any, details: dict | None = None
) -> License:
    """Change the flag under the row lock; a change that changes nothing is not audited."""
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if license.suspended != suspended:
            license.suspended = suspended
            license.save(update_fields=["suspended", "updated_at"])
            audit_record(
                action=action,
                tenant_id=license.tenant_id,
                user=actor,
                target=license,
                details=details or {},
            )
    return license


class ExpiryChange:
    """How an operator changed a license's end (the `how` of its audit row)."""

    EXTENDED = "extended"  # by a number of days
    SET = "set"  # to a date
    PERPETUAL = "perpetual"


def license_extend(
    *, license: License, expires_at: datetime | None, actor: Any = None, how: str = ExpiryChange.SET
) -> License:
    """Set the license's end to a date (None: perpetual). An end in the past is
    refused: expiring a license now is what suspension is for. Setting what is
    already there changes nothing and is not audited."""
    from django.utils import timezone

    from core.errors import ApplicationError

    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The new expiry must be in the future.", code="invalid_request")
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        return _set_expiry(license, expires_at, actor=actor, how=how)


def license_extend_by_days(*, license: License, days: int, actor: Any = None) -> tuple[License, bool]:
    """Add `days` to the license's current end, or to now if it has ended.
    A perpetual license stays perpetual (only a date makes it expire): the
    second value says whether anything changed. The base is read under the row
    lock, so two operators extending at once add both their days."""
    from datetime import timedelta

    from django.utils import timezone

    from core.errors import ApplicationError

    if days < 1:
        raise ApplicationError("Extend by at least one day.", code="invalid_request")
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if license.expires_at is None:
            return license, False
        base = max(license.expires_at, timezone.now())
        try:
            expires_at = base + timedelta(days=days)
        except OverflowError:
            raise ApplicationError(
                "That is past the last date the server can store.", code="invalid_request"
            ) from None
        return _set_expiry(license, expires_at, actor=actor, how=ExpiryChange.EXTENDED, days=days), True


def license_make_perpetual(*, license: License, actor: Any = None) -> License:
    """The license never expires (until a date is set again)."""
    return license_extend(license=license, expires_at=None, actor=actor, how=ExpiryChange.PERPETUAL)


def _set_expiry(license: License, expires_at, *, actor: Any, how: str, days: int | None = None) -> License:
    previous = license.expires_at
    if previous == expires_at:
        return license
    license.expires_at = expires_at
    license.save(update_fields=["expires_at", "updated_at"])
    details = {
        "from": previous.isoformat() if previous else None,
        "to": expires_at.isoformat() if expires_at else None,
        "how": how,
    }
    if days is not None:
        details["days"] = days
    audit_record(
        action=Event.LICENSE_EXTENDED,
        tenant_id=license.tenant_id,
        user=actor,
        target=license,
        details=details,
    )
    return license


def license_unbind_machine(
    *, license: License, fingerprint: str, actor: Any = None, capped: bool = False
) -> License:
    """Take a machine off the license, freeing its place for another one; the
    machine's live lease, if any, ends now (it may no longer hold a seat).

    `capped`: a tenant admin's own unbind (the dashboard), counted against the
    license's `max_unbinds_per_month` (its terms) and refused past it with
    `unbind_limit_reached`, so unbinding cannot pass one seat of a node-locked
    license from machine to machine. The count is read under the license row's
    lock, so unbinds at once never pass the cap together. An operator's unbind
    (the admin site: a support case) is neither capped nor counted."""
    from core.errors import ApplicationError
    from licenses.leases import lease_force_release
    from licenses.ledger.gateway import seat_ledger
    from licenses.selectors import UNBIND_VIA_DASHBOARD

    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if fingerprint not in license.hardware_fingerprints:
            raise ApplicationError("This machine is not bound to the license.", code="invalid_request")
        details = {"fingerprint": fingerprint}
        if capped:
            if (refusal := unbind_limit_error(license)) is not None:
                raise refusal
            details["via"] = UNBIND_VIA_DASHBOARD
        license.hardware_fingerprints = [fp for fp in license.hardware_fingerprints if fp != fingerprint]
        license.save(update_fields=["hardware_fingerprints", "updated_at"])
        audit_record(
            action=Event.LICENSE_MACHINE_UNBOUND,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details=details,
        )
        for lease in seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id):
            if lease.fingerprint == fingerprint:
                try:
                    lease_force_release(license=license, session_id=lease.session_id, actor=actor)
                except ApplicationError:
                    pass  # it ended meanwhile
    return license


def unbind_limit_error(license: License):
    """The refusal (`unbind_limit_reached`) of a tenant admin's next unbind
    when the license's monthly cap is used, or None. Decisive only under the
    license row's lock (license_unbind_machine); a page may ask it first."""
    from core.errors import ApplicationError
    from licenses.selectors import license_unbinds_this_month, unbind_month

    cap = license.terms.max_unbinds_per_month
    if cap is None:
        return None
    used = license_unbinds_this_month(license=license)
    if used < cap:
        return None
    resets_at = unbind_month()[1]
    if cap == 0:
        message = "Machines of this license cannot be unbound here; ask your vendor's support."
    else:
        message = (
            f"This license's {cap} unbind{'s' if cap != 1 else ''} of the month "
            f"{'are' if cap != 1 else 'is'} used; the next is possible from "
            f"{resets_at:%Y-%m-%d} 00:00 UTC, or ask your vendor's support."
        )
    return ApplicationError(
        message,
        code="unbind_limit_reached",
        details={"limit": cap, "used": used, "resets_at": resets_at.isoformat()},
    )


class BlockKind:
    """What a block on a license names: a machine by its fingerprint, or a
    user by their id (the ledger's `user_id`)."""

    MACHINE = "machine"
    USER = "user"
    ALL = (MACHINE, USER)


BLOCK_REASON_MAX = 200


def license_block(*, license: License, kind: str, value: str, reason: str = "", actor: Any = None) -> License:
    """Block a machine or a user on the license: new acquires from it are
    refused (`machine_blocked` / `user_blocked`), and its live leases end now
    (force-released; one another process lets through ends at its next
    heartbeat). A user is named by id or email and must be of the license's
    tenant; the block keeps the id.
    Blocking what is already blocked is refused."""
    from core.errors import ApplicationError

    value = block_value(license, kind, value)
    reason = (reason or "").strip()[:BLOCK_REASON_MAX]
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if license.block_of(kind, value) is not None:
            raise ApplicationError(f"This {kind} is already blocked on the license.", code="invalid_request")
        from django.utils import timezone

        live = _live_leases_of(license, kind, value)
        block = {
            "kind": kind,
            "value": value,
            "reason": reason,
            "by": getattr(actor, "email", "") or "",
            "at": timezone.now().isoformat(),
            # The sessions this block ends now: their next heartbeat or borrow
            # answers the block's code, not "session not found".
            "sessions": [lease.session_id for lease in live],
        }
        license.blocks = [*license.blocks, block]
        license.save(update_fields=["blocks", "updated_at"])
        audit_record(
            action=Event.LICENSE_BLOCKED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"kind": kind, "value": value, "reason": reason},
        )
        _release(license, live, actor)
        _tickets_drop(license, kind, value)
    return license


def license_unblock(*, license: License, kind: str, value: str, actor: Any = None) -> License:
    """Lift a block: the machine or user may acquire again (other processes
    see it within LICENSE_CACHE_SECONDS). Lifting a block that is not there is
    refused."""
    from core.errors import ApplicationError

    if kind not in BlockKind.ALL:
        raise ApplicationError("A block names a machine or a user.", code="invalid_request")
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        block = license_block_named(license, kind, value)
        if block is None:
            raise ApplicationError(f"This {kind} is not blocked on the license.", code="invalid_request")
        license.blocks = [item for item in license.blocks if item is not block]
        license.save(update_fields=["blocks", "updated_at"])
        audit_record(
            action=Event.LICENSE_UNBLOCKED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"kind": kind, "value": block["value"], "reason": block.get("reason", "")},
        )
    return license


def license_block_named(license: License, kind: str, value: str) -> dict | None:
    """The block a console names: a user by id or by email (kept as the id),
    a machine by its fingerprint; None when there is none."""
    from core.errors import ApplicationError

    try:
        value = block_value(license, kind, value)
    except ApplicationError:
        value = (value or "").strip()  # a user since deleted: the id as written
    return license.block_of(kind, value)


def block_value(license: License, kind: str, value: str) -> str:
    """The value a block keeps (a user's id, a machine's fingerprint), or
    ApplicationError saying why there can be no such block."""
    import uuid

    from accounts.models import User
    from core.errors import ApplicationError

    if kind not in BlockKind.ALL:
        raise ApplicationError("A block names a machine or a user.", code="invalid_request")
    value = (value or "").strip()
    if not value or len(value) > 255:
        raise ApplicationError(
            "Name the machine (its fingerprint) or the user (their id) to block.", code="invalid_request"
        )
    if kind == BlockKind.MACHINE and not FINGERPRINT.fullmatch(value):
        # A value no client can send as its fingerprint would block nothing.
        raise ApplicationError(
            "A machine is named by its fingerprint: 8 to 128 letters, digits or . _ : + / = -",
            code="invalid_request",
        )
    if kind == BlockKind.USER:
        # By id, or by email (the console's form): either way the block keeps the id.
        with tenant_scope(license.tenant_id):
            users = User.objects.filter(tenant_id=license.tenant_id)
            if "@" in value:
                found = users.filter(email=value.lower()).values_list("pk", flat=True).first()
            else:
                try:
                    found = users.filter(pk=uuid.UUID(value)).values_list("pk", flat=True).first()
                except ValueError:
                    found = None
        if found is None:
            raise ApplicationError(
                "No user of the license's tenant has this id or email.", code="invalid_request"
            )
        value = str(found)
    return value


def _tickets_drop(license: License, kind: str, value: str) -> None:
    """A blocked machine's or user's (or a taken-back seat's) queue tickets go:
    they wait for nothing and must hold back no one."""
    from licenses.ledger.gateway import seat_ledger

    if kind == BlockKind.MACHINE:
        seat_ledger().tickets_drop(license_id=license.id, tenant_id=license.tenant_id, fingerprint=value)
    else:
        seat_ledger().tickets_drop(license_id=license.id, tenant_id=license.tenant_id, user_id=value)


def _live_leases_of(license: License, kind: str, value: str) -> list:
    from licenses.ledger.gateway import seat_ledger

    field = "fingerprint" if kind == BlockKind.MACHINE else "user_id"
    leases = seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
    return [lease for lease in leases if str(getattr(lease, field) or "") == value]


# --- Named seats (issue 17) ---------------------------------------------------------------


def seats_cooling(license: License, now) -> list[dict]:
    """The seats taken back from a user within the policy's cooldown: not
    assignable to another yet (seat sharing by reassignment is not free)."""
    from django.utils.dateparse import parse_datetime

    hours = license.terms.reassign_cooldown_hours
    since = now - timedelta(hours=hours)
    return [entry for entry in license.unassigned or () if (parse_datetime(entry["at"]) or since) > since]


def seat_assign(*, license: License, user: Any, actor: Any = None) -> License:
    """Give a member of the license's tenant a named seat (seat mode named):
    at most max_seats at once, counting seats taken back within the cooldown
    (409 `seats_all_assigned`). Audited."""
    from django.utils import timezone

    from core.errors import ApplicationError

    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if license.terms.seat_mode != SeatMode.NAMED:
            raise ApplicationError("This license's seats are not named seats.", code="invalid_request")
        if str(user.tenant_id) != str(license.tenant_id) or not user.is_active_member:
            raise ApplicationError("Choose an active member of this tenant.", code="invalid_request")
        if license.assignment_of(user.pk) is not None:
            raise ApplicationError(
                f"{user.email} has a seat of this license already.", code="invalid_request"
            )
        now = timezone.now()
        cooling = seats_cooling(license, now)
        taken = len(license.assignments) + len(cooling)
        if taken >= license.max_seats:
            raise ApplicationError(
                f"All {license.max_seats} seats are assigned"
                + (
                    f" or were taken back within {license.terms.reassign_cooldown_hours} hours"
                    if cooling
                    else ""
                )
                + ": take one back, or add seats.",
                code="seats_all_assigned",
                details={
                    "max": license.max_seats,
                    "assigned": len(license.assignments),
                    "cooling": len(cooling),
                },
            )
        entry = {
            "user_id": str(user.pk),
            "email": user.email,
            "by": getattr(actor, "email", "") or "",
            "at": now.isoformat(),
        }
        license.assignments = [*license.assignments, entry]
        license.unassigned = cooling
        license.save(update_fields=["assignments", "unassigned", "updated_at"])
        audit_record(
            action=Event.LICENSE_SEAT_ASSIGNED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"user_id": str(user.pk), "email": user.email},
        )
    return license


def seat_unassign(*, license: License, user_id: Any, actor: Any = None) -> License:
    """Take a named seat back: the user's live leases of the license end now
    (force-released; one another process lets through ends at its next
    heartbeat, `not_assigned`), and the seat cools down before it can be
    given to another. Audited."""
    from django.utils import timezone

    from core.errors import ApplicationError

    with tenant_scope(license.tenant_id):
        license = _locked(license)
        entry = license.assignment_of(user_id)
        if entry is None:
            raise ApplicationError("This user has no seat of this license.", code="invalid_request")
        now = timezone.now()
        license.assignments = [item for item in license.assignments if item is not entry]
        taken = {**entry, "by": getattr(actor, "email", "") or "", "at": now.isoformat()}
        license.unassigned = [*seats_cooling(license, now), taken]
        license.save(update_fields=["assignments", "unassigned", "updated_at"])
        audit_record(
            action=Event.LICENSE_SEAT_UNASSIGNED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"user_id": entry["user_id"], "email": entry.get("email", "")},
        )
        _release(license, _live_leases_of(license, BlockKind.USER, entry["user_id"]), actor)
        _tickets_drop(license, BlockKind.USER, entry["user_id"])
    return license


def license_seat_rules_set(*, license: License, rules: list, actor: Any = None) -> License:
    """Set the license's group rules (licenses.seat_rules: reservations,
    limits, queue priority), checked; the leases live now keep the group they
    were granted in. Audited. A refusal is 400 `invalid_request` saying why."""
    from core.errors import ApplicationError
    from licenses.seat_rules import SeatRulesInvalid, seat_rules_clean, seat_rules_reserved

    with tenant_scope(license.tenant_id):
        license = _locked(license)
        try:
            cleaned = seat_rules_clean(
                rules, max_seats=license.max_seats, reserved_before=seat_rules_reserved(license.seat_rules)
            )
        except SeatRulesInvalid as invalid:
            raise ApplicationError(str(invalid), code="invalid_request") from None
        if cleaned == (license.seat_rules or []):
            return license
        license.seat_rules = cleaned
        license.save(update_fields=["seat_rules", "updated_at"])
        audit_record(
            action=Event.LICENSE_SEAT_RULES_CHANGED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"groups": [rule["name"] for rule in cleaned]},
        )
    return license


def _release(license: License, leases: list, actor: Any) -> None:
    """End the blocked holder's live leases now, as unbinding a machine does."""
    from core.errors import ApplicationError
    from licenses.leases import lease_force_release

    for lease in leases:
        try:
            lease_force_release(license=license, session_id=lease.session_id, actor=actor)
        except ApplicationError:
            pass  # it ended meanwhile


def _open_claims_void(license: License) -> None:
    """A new key (or none, the license deleted) ends the claim links still
    open: claimed later, one would mint another key and stop the new one."""
    from django.utils import timezone

    from licenses.models import LicenseClaim

    now = timezone.now()
    LicenseClaim.objects.filter(license_id=license.pk, used_at__isnull=True, expires_at__gt=now).update(
        expires_at=now
    )


def license_regenerate_key(*, license: License, actor: Any = None) -> tuple[License, str]:
    """Replace the key (a leaked one, say); the old key stops working at once
    (other server processes within LICENSE_CACHE_SECONDS), and so do claim
    links still open (licenses.mailing). Live leases keep their
    seats: their tokens name the license, not the key. The new key exists only
    in this return value."""
    key = generate_license_key()
    with tenant_scope(license.tenant_id):
        license = _locked(license)
        previous_prefix = license.key_prefix
        license.key_digest = license_key_digest(key)
        license.key_prefix = license_key_display_prefix(key)
        license.save(update_fields=["key_digest", "key_prefix", "updated_at"])
        _open_claims_void(license)
        audit_record(
            action=Event.LICENSE_KEY_REGENERATED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"previous_prefix": previous_prefix, "key_prefix": license.key_prefix},
        )
    return license, key


def _change_value(value: Any) -> Any:
    """A changed value as the audit row keeps it: a related row (the policy) by
    its slug, or its id."""
    from django.db.models import Model

    if isinstance(value, Model):
        return getattr(value, "slug", None) or str(value.pk)
    return value


def license_update(*, license: License, fields: Iterable[str], actor: Any = None) -> License:
    """Save the named fields of an edited license (the admin's change form) and
    record what changed. State changes with their own rules (suspension,
    expiry, machines, the key) go through their own services instead."""
    guarded = {
        "tenant",
        "key_digest",
        "key_prefix",
        "suspended",
        "expires_at",
        "hardware_fingerprints",
        "blocks",
        "deleted_at",
    }
    fields = [name for name in fields if name not in guarded]
    if not fields:
        return license
    with tenant_scope(license.tenant_id):
        current = _locked(license)
        changes = {}
        for name in fields:
            before, after = getattr(current, name), getattr(license, name)
            if before != after:
                setattr(current, name, after)
                changes[name] = {"from": _change_value(before), "to": _change_value(after)}
        if changes:
            current.full_clean(exclude=["tenant", "key_digest"])
            current.save(update_fields=[*changes, "updated_at"])
            audit_record(
                action=Event.LICENSE_UPDATED,
                tenant_id=current.tenant_id,
                user=actor,
                target=current,
                details={"changes": json.loads(json.dumps(changes, cls=DjangoJSONEncoder))},
            )
    return current


def license_notifications_set(
    *,
    license: License,
    notify_seats: bool,
    notify_seats_percent: int | None,
    notify_expiry: bool,
    notify_expiry_days: int | None,
    notify_email: bool,
    notify_webhook: bool,
    actor: Any = None,
) -> License:
    """Set the notices of a license (the tenant admin's dashboard form; issue
    16) and record what changed ("license.updated", as every edit). A
    percent or a number of days out of range is refused (`invalid_request`),
    as is a notice turned on with neither channel: it would tell no one."""
    from core.errors import ApplicationError

    if (notify_seats or notify_expiry) and not (notify_email or notify_webhook):
        raise ApplicationError(
            "A notice that is on needs a channel: choose email, webhooks or both (or turn the notices off).",
            details={"fields": {"notify_email": ["Choose a channel."]}},
        )
    values = {
        "notify_seats": notify_seats,
        "notify_seats_percent": notify_seats_percent,
        "notify_expiry": notify_expiry,
        "notify_expiry_days": notify_expiry_days,
        "notify_email": notify_email,
        "notify_webhook": notify_webhook,
    }
    edited = copy.copy(license)
    for name, value in values.items():
        setattr(edited, name, value)
    try:
        for name in ("notify_seats_percent", "notify_expiry_days"):
            License._meta.get_field(name).clean(values[name], edited)
    except ValidationError as error:
        raise ApplicationError(
            f"Not a usable value: {' '.join(error.messages)}", details={"fields": {name: error.messages}}
        ) from None
    return license_update(license=edited, fields=NOTIFICATION_FIELDS, actor=actor)


# --- Provisioning API (issue 15) ------------------------------------------------------


def tenant_delete(*, tenant: Tenant, actor: Any = None) -> Tenant:
    """Delete a tenant, softly: it is suspended (its members are refused and
    their sign-ins end, its API keys answer `tenant_inactive`), each of its
    licenses is deleted (license_delete), and it is marked deleted, so the
    provisioning API answers `tenant_not_found` for it and lists leave it out.
    Its rows stay, and with them its audit trail. Deleting it again changes
    nothing."""
    from django.utils import timezone

    from accounts.services import tenant_set_active

    with tenant_scope(tenant.id):
        current = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if current.deleted_at is not None:
            return current
        current = tenant_set_active(tenant=current, active=False, actor=actor)
        deleted = 0
        for license in License.objects.filter(tenant_id=current.id, deleted_at__isnull=True):
            license_delete(license=license, actor=actor)
            deleted += 1
        current.deleted_at = timezone.now()
        current.save(update_fields=["deleted_at", "updated_at"])
        audit_record(
            action=Event.TENANT_DELETED,
            tenant_id=current.id,
            user=actor,
            target=current,
            details={"licenses": deleted},
        )
    return current


def license_delete(*, license: License, actor: Any = None) -> License:
    """Delete a license, softly: it is suspended (live leases end at their next
    heartbeat, as suspension does: invariant 6) and marked deleted, so acquire
    and status by key answer `license_not_found` and every list leaves it out;
    the row stays, and with it its audit trail. Deleting a deleted license
    changes nothing."""
    from django.utils import timezone

    with tenant_scope(license.tenant_id):
        license = _locked(license)
        if license.deleted_at is not None:
            return license
        license.deleted_at = timezone.now()
        license.suspended = True
        license.save(update_fields=["deleted_at", "suspended", "updated_at"])
        _open_claims_void(license)
        audit_record(
            action=Event.LICENSE_DELETED,
            tenant_id=license.tenant_id,
            user=actor,
            target=license,
            details={"key_prefix": license.key_prefix},
        )
    return license
