"""A license's effective terms: its policy's values under its own overrides.

The one place that says what a license allows. Acquire, heartbeat, borrow,
machine binding, the token, status, the console and the dashboard read a
license through `license_terms`, never its override fields (which may be
empty, meaning "the policy's").

Seats and the end date are the license's own: a license made from a policy
takes the policy's seats and trial length when it is made
(`licenses.services.license_create`), and keeps them as numbers the seat
ledger reads under its row lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

ENTITLEMENT_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


@dataclass(frozen=True)
class LicenseTerms:
    max_seats: int
    lease_ttl: int
    offline_grace: int
    borrow_limit_hours: int
    max_machines: int | None
    # Unbinds a tenant admin may make per calendar month (UTC); None: no cap.
    max_unbinds_per_month: int | None
    # Floating-license rules (issue 17): seats past max_seats, marked as
    # overdraft; seconds a released seat stays its holder's; seconds of
    # reported inactivity that end a seat (0: never).
    overdraft_seats: int
    linger_seconds: int
    idle_timeout: int
    # Seats out on borrow at once: of the license, of one user (None: no limit).
    borrow_max_seats: int | None
    borrow_max_per_user: int | None
    # What a seat is (licenses.models.SeatMode), the machines one user may
    # hold leases on in the per-user modes, a named seat's cooldown.
    seat_mode: str
    machines_per_user: int | None
    reassign_cooldown_hours: int
    # The queue: tickets waiting at once (0: no queue), an unpolled ticket's life.
    queue_max_tickets: int
    queue_ticket_ttl: int
    entitlements: dict[str, Any]
    expires_at: datetime | None
    # The end of the grace period after expiry; None without an expiry or grace.
    grace_until: datetime | None
    maintenance_end: date | None
    max_version: str

    @property
    def seats_per_user(self) -> bool:
        """The ledger counts seats per user (modes per_user and named)."""
        return self.seat_mode in ("per_user", "named")

    @property
    def queue_poll_after(self) -> int:
        """Seconds a queued client waits before it polls: often enough that a
        seat freed for it is taken soon, and three polls inside the ticket's TTL."""
        return max(1, min(5, self.queue_ticket_ttl // 3))

    @property
    def heartbeat_interval(self) -> int:
        # Room for two missed beats before the lease expires (invariant 5).
        return max(1, self.lease_ttl // 3)

    @property
    def ends_at(self) -> datetime | None:
        """The last moment a seat may be held: the grace's end, else the expiry."""
        return self.grace_until or self.expires_at

    def is_expired(self, now: datetime | None = None) -> bool:
        end = self.ends_at
        return end is not None and end <= (now or timezone.now())

    def in_grace(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return (
            self.expires_at is not None
            and self.grace_until is not None
            and self.expires_at <= now < self.grace_until
        )


def _days_after(moment: datetime, days: int) -> datetime:
    """`moment` plus `days`, or the last moment a datetime holds when that is
    past it (a license that runs to 9999-12-31 on a policy with a grace)."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return datetime.max.replace(tzinfo=moment.tzinfo)


def _pick(override, inherited):
    return inherited if override is None else override


def license_terms(license) -> LicenseTerms:
    """The effective values of a license (its policy loaded with it where the
    caller is a hot path: licenses.selectors fetches both in one statement)."""
    if license.policy_id is None:
        # Not saved yet (a license is given its policy when saved): the
        # defaults a policy is made with.
        policy = type(license)._meta.get_field("policy").related_model()
    else:
        policy = license.policy
    grace_until = None
    if license.expires_at is not None and policy.expiry_grace_days:
        grace_until = _days_after(license.expires_at, policy.expiry_grace_days)
    if license.entitlements is None:
        entitlements = dict.fromkeys(policy.entitlements or {}, True)
    else:
        entitlements = dict(license.entitlements)
    return LicenseTerms(
        max_seats=license.max_seats,
        lease_ttl=_pick(license.lease_ttl, policy.lease_ttl),
        offline_grace=_pick(license.offline_grace, policy.offline_grace),
        borrow_limit_hours=_pick(license.borrow_limit_hours, policy.borrow_limit_hours),
        max_machines=_pick(license.max_machines, policy.max_machines),
        max_unbinds_per_month=_pick(license.max_unbinds_per_month, policy.max_unbinds_per_month),
        overdraft_seats=_pick(license.overdraft_seats, policy.overdraft_seats),
        linger_seconds=_pick(license.linger_seconds, policy.linger_seconds),
        idle_timeout=_pick(license.idle_timeout, policy.idle_timeout),
        borrow_max_seats=_pick(license.borrow_max_seats, policy.borrow_max_seats),
        borrow_max_per_user=_pick(license.borrow_max_per_user, policy.borrow_max_per_user),
        seat_mode=license.seat_mode or policy.seat_mode,
        machines_per_user=_pick(license.machines_per_user, policy.machines_per_user),
        reassign_cooldown_hours=policy.reassign_cooldown_hours,
        queue_max_tickets=_pick(license.queue_max_tickets, policy.queue_max_tickets),
        queue_ticket_ttl=_pick(license.queue_ticket_ttl, policy.queue_ticket_ttl),
        entitlements=entitlements,
        expires_at=license.expires_at,
        grace_until=grace_until,
        maintenance_end=policy.maintenance_end,
        max_version=policy.max_version or "",
    )


def entitlements_from_codes(policy, codes) -> dict[str, bool]:
    """A license's entitlements from codes of its policy's catalog; a code the
    catalog lacks is a ValueError naming it."""
    catalog = policy.entitlements or {}
    unknown = sorted(str(code) for code in codes if code not in catalog)
    if unknown:
        raise ValueError(f"Not in the catalog of policy {policy.slug}: {', '.join(unknown)}.")
    return dict.fromkeys(sorted(codes), True)


def catalog_error(catalog: Any) -> str | None:
    """What is wrong with a policy's entitlement catalog, or None."""
    if not isinstance(catalog, dict):
        return 'The catalog is a JSON object of codes and names: {"code": "Name"}.'
    for code, name in catalog.items():
        if not ENTITLEMENT_CODE.match(code):
            return f"{code!r} is not a code: lower-case letters, digits, '.', '_' or '-', at most 64."
        if not isinstance(name, str) or not name.strip():
            return f"The code {code!r} needs a name."
    return None


def version_error(version: str) -> str | None:
    if not VERSION.match(version):
        return "A version is dotted numbers, e.g. 2 or 2.4 or 2.4.1."
    return None
