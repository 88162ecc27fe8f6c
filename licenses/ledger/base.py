"""The one interface both seat-ledger backends implement, and its invariants.

(From DESIGN.md, "Seat ledger: invariants".)
1. Never oversell: live leases <= max_seats at every instant.
2. Acquire is idempotent per (license, user, fingerprint): a user whose
   machine holds a live lease gets that lease back (its expiry extended) and
   uses no second seat. Another user on the same machine gets a lease of
   their own, never that one (invariant 10); leases without a user
   (user_id None) count as one user.
3. Release is idempotent: an unknown, expired or released session frees
   nothing and raises SessionNotFound.
4. Expiry heals itself within the TTL plus one second, with no call and no
   background task; the ledger's own clock decides (Redis TIME, database now()).
5. A heartbeat extends only a live lease.
6. Lowering max_seats never kills live leases; acquire refuses until under.
7. (Redis) every script touches one license's keys, under a {license_id} tag.
8. What prunes an expired lease leaves its record for the sweep
   (`expired_pending` / `expired_ack`).
11. A borrow never outlasts the license: `not_after` (its expiry) caps it.

Floating-license rules (issue 17), each decided inside the same atomic step
that grants or ends a seat:
- Overdraft: acquire's `overdraft` seats beyond max_seats may be granted;
  live leases <= max_seats + overdraft, and a lease granted while max_seats
  were already in use is marked `overdraft` for good.
- Seats per user (`per_user`): a seat is a user's, whatever the number of
  their machines (up to `machines_per_user`); never more users than seats
  (plus overdraft).
- Borrow limits: borrow's `max_borrowed` and `max_per_user` cap the leases
  out on borrow at once, counted when the borrow is granted.
- Linger: release's `linger` seconds keep a released seat held for its
  holder (user + machine): the lease stays counted, `lingering`, until the
  linger ends (then it expires as any lease, recorded as a linger's end) or
  its holder acquires again: their new lease (a new session) takes its seat
  whatever the count (`reclaimed`) and the lingering one is gone. A
  lingering lease takes no heartbeat, borrow or second client release
  (SessionNotFound); a release with no linger (an operator's) frees it.

Every method takes the license's id; the caller has already checked the
license (exists in the tenant, not suspended or expired, fingerprint allowed).
Times are timezone-aware UTC datetimes read from the ledger's clock.

What differs between the backends beyond the store (whether a call needs the
tenant's database scope) is answered by the backend itself, `call_scope()`,
so the code in front of the ledger (licenses/ledger/gateway.py) never asks
which backend it has.
"""

from __future__ import annotations

import secrets
import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Lease:
    session_id: str
    license_id: uuid.UUID
    tenant_id: uuid.UUID
    fingerprint: str
    user_id: str | None
    created_at: datetime
    expires_at: datetime
    borrowed_until: datetime | None = None
    client_info: dict[str, Any] = field(default_factory=dict)
    # Granted beyond max_seats, out of the license's overdraft seats.
    overdraft: bool = False
    # Released by its holder and held for them until then (linger); None in use.
    lingering_until: datetime | None = None
    # The group rule it was granted under (None: no group's), counted there.
    group: str | None = None

    @property
    def is_borrowed(self) -> bool:
        return self.borrowed_until is not None

    @property
    def lingering(self) -> bool:
        return self.lingering_until is not None


def lease_from_row(row: Any, *, expires_at: datetime | None = None) -> Lease:
    """A Lease from a database row holding one (a live lease of the database
    ledger, a borrowed seat kept for the Redis ledger)."""
    return Lease(
        session_id=row.session_id,
        license_id=row.license_id,
        tenant_id=row.tenant_id,
        fingerprint=row.fingerprint,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=expires_at or row.expires_at,
        borrowed_until=row.borrowed_until,
        client_info=row.client_info,
        # A borrowed seat kept for Redis has neither: it is no overdraft's
        # (its record says so) and never lingers.
        overdraft=getattr(row, "overdraft", False),
        # A lingering row expires at the linger's end.
        lingering_until=row.expires_at if getattr(row, "lingering_since", None) is not None else None,
        group=getattr(row, "seat_group", None) or None,
    )


@dataclass(frozen=True)
class AcquireResult:
    lease: Lease
    created: bool  # False: the user's existing live lease on the machine came back
    used: int  # live leases of the license after this acquire
    # The new lease took the seat of its holder's lingering one.
    reclaimed: bool = False
    # Granted to a queued ticket: that ticket, and how long it waited.
    ticket_id: str | None = None
    waited: timedelta | None = None


@dataclass(frozen=True)
class SeatGroup:
    """A rule of the license's seats for one group of holders (issue 17):
    `reserve` seats only its members may take, `max` seats they may hold at
    most (None: no limit), and the `priority` of their queued tickets."""

    name: str
    reserve: int = 0
    max: int | None = None
    priority: int = 0


@dataclass(frozen=True)
class QueueRequest:
    """An acquire that waits in the license's queue when no seat is free for
    it: a ticket left unpolled for `ttl` seconds leaves the queue by itself;
    at most `max_tickets` wait at once. `ticket_id`: the ticket the caller
    polls with (None: the holder's own ticket, if any, else a new one)."""

    ttl: int
    max_tickets: int
    ticket_id: str | None = None


@dataclass(frozen=True)
class QueueTicket:
    """A place in the queue: what acquire answers when it queued the caller.
    `position` counts from 1 at the head; `waiting` is the queue's length."""

    ticket_id: str
    position: int
    waiting: int
    created_at: datetime
    expires_at: datetime
    created: bool  # False: the holder's ticket was already waiting


@dataclass(frozen=True)
class ExpiredLease:
    """A lease that ended by expiry, kept for the sweep to record (invariant 8)."""

    lease: Lease
    expired_at: datetime


@dataclass(frozen=True)
class LedgerEvent:
    """The audit event of a change (release, borrow, a lease ended), handed to
    the ledger with the change. A backend that `records_events` keeps it in
    the same atomic step as the change, for the drainer to write to the audit
    log; the others ignore it and the caller writes the row in the change's
    transaction. The details here are those the lease does not give; the
    user and actor are who made the change on someone else's behalf (an
    operator's force-release), empty for the lease's own client."""

    action: str
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    request_id: str = ""
    client_ip: str | None = None
    user_id: str | None = None
    actor: str = ""


@dataclass(frozen=True)
class PendingEvent:
    """An event a ledger kept with its change, not yet acknowledged: the lease
    as the change left it, and when (the ledger's clock)."""

    stream_id: str
    event: LedgerEvent
    lease: Lease | None  # None: an event of no lease (a refused heartbeat)
    occurred_at: datetime


def new_session_id() -> str:
    """A fresh session id: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


class LedgerError(Exception):
    pass


class NoSeatsAvailable(LedgerError):
    """No seat is free for the holder. `held_for`: why, when seats are free
    for others: "reserved" (other groups' reservations), "queue" (the tickets
    ahead); "" when every seat is in use."""

    def __init__(self, used: int, max_seats: int, held_for: str = "") -> None:
        super().__init__(
            f"all {max_seats} seats are in use" if not held_for else f"the free seats are {held_for}"
        )
        self.used = used
        self.max_seats = max_seats
        self.held_for = held_for


class SessionNotFound(LedgerError):
    """Unknown, expired or already released session."""


class UserMachineLimitReached(LedgerError):
    """Seat mode per_user: the user holds leases on `limit` machines already."""

    def __init__(self, limit: int | None, held: int) -> None:
        super().__init__(f"the user holds leases on {held} machines (limit {limit})")
        self.limit = limit
        self.held = held


class BorrowLimitReached(LedgerError):
    """A borrow past the license's limit of seats out on borrow at once
    (`scope` "license") or of one user's (`scope` "user")."""

    def __init__(self, scope: str, limit: int, borrowed: int) -> None:
        super().__init__(f"{borrowed} seats are out on borrow ({scope} limit {limit})")
        self.scope = scope
        self.limit = limit
        self.borrowed = borrowed


class GroupLimitReached(LedgerError):
    """The holder's group holds its `max` seats already."""

    def __init__(self, group: str, limit: int, held: int) -> None:
        super().__init__(f"group {group!r} holds {held} seats (limit {limit})")
        self.group = group
        self.limit = limit
        self.held = held


class QueueFull(LedgerError):
    """No seat is free and the queue holds its most tickets."""

    def __init__(self, waiting: int, max_tickets: int) -> None:
        super().__init__(f"{waiting} tickets wait in the queue (limit {max_tickets})")
        self.waiting = waiting
        self.max_tickets = max_tickets


class TicketNotFound(LedgerError):
    """A queue ticket that is not waiting: unknown, left unpolled past its
    TTL, lost with the ledger's state, or granted already."""


class LeaseCursorInvalid(LedgerError, ValueError):
    """A live_leases_page cursor this backend did not hand out."""


class LedgerUnavailable(LedgerError):
    """The ledger's store does not answer (the API turns this into 503)."""


class SeatLedger(ABC):
    name: str
    # Whether the ledger keeps a change's audit event with the change itself
    # (LedgerEvent), so that no database write follows the change in the
    # request; False: the caller records it in the change's transaction.
    records_events: bool = False

    @abstractmethod
    def call_scope(self, tenant_id: uuid.UUID) -> AbstractContextManager:
        """What a call about one of this tenant's licenses runs in: the
        tenant's database scope where the backend keeps rows under RLS,
        nothing at all where it does not touch the database."""

    @abstractmethod
    def acquire(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        max_seats: int,
        fingerprint: str,
        user_id: str | None,
        ttl: int,
        client_info: dict[str, Any] | None = None,
        overdraft: int = 0,
        per_user: bool = False,
        machines_per_user: int | None = None,
        groups: tuple[SeatGroup, ...] = (),
        group: str | None = None,
        queue: QueueRequest | None = None,
    ) -> AcquireResult | QueueTicket:
        """Take a seat for `user_id` on `fingerprint`, or return the live
        lease that user holds there (expiry extended to at least now + ttl);
        a lingering one of theirs gives its seat to the new lease. With every one
        of max_seats in use, one of `overdraft` more seats, marked so. With
        `per_user`, seats are counted per user: a user who holds one already
        takes a lease on another machine without a second seat, up to
        `machines_per_user` machines (UserMachineLimitReached), and `used`
        counts users.

        `groups` are the license's group rules and `group` the holder's (one
        of their names, or None): the seats free for this holder are the
        capacity less those in use and less the unused reservations of the
        other groups, and a group at its `max` is refused (GroupLimitReached).
        A new lease records its group, counted against that group's rules
        until it ends.

        Queued tickets wait in order (their group's priority, then arrival):
        a new seat goes to a holder only when fewer tickets ahead of theirs
        (every ticket, for a holder without one) could take a seat now than
        seats are free for them, so no acquire overtakes the queue. With
        `queue`, a holder refused a seat gets (or keeps) a ticket, its expiry
        moved to now + queue.ttl, and the QueueTicket comes back instead of a
        refusal (QueueFull past queue.max_tickets; TicketNotFound for a
        `ticket_id` not waiting). A holder's ticket ends when they get a seat.
        Raises NoSeatsAvailable."""

    @abstractmethod
    def heartbeat(
        self, *, license_id: uuid.UUID, session_id: str, ttl: int, rejection: LedgerEvent | None = None
    ) -> Lease:
        """Extend a live lease to at least now + ttl. Raises SessionNotFound
        (with `rejection` kept, on a ledger that records events)."""

    @abstractmethod
    def release(
        self, *, license_id: uuid.UUID, session_id: str, event: LedgerEvent | None = None, linger: int = 0
    ) -> Lease:
        """End a live lease, freeing its seat; with `linger` seconds, keep the
        seat for its holder that long instead (the lease comes back
        `lingering`, expiring then). Raises SessionNotFound, also for a
        lingering lease released again with a linger."""

    @abstractmethod
    def borrow(
        self,
        *,
        license_id: uuid.UUID,
        session_id: str,
        seconds: int,
        not_after: datetime | None = None,
        event: LedgerEvent | None = None,
        max_borrowed: int | None = None,
        max_per_user: int | None = None,
    ) -> Lease:
        """Keep a live lease until now + seconds, but not after `not_after`
        (the license's expiry), for offline use; release ends it early.
        With `max_borrowed` (the license's) or `max_per_user` (each user's),
        a lease not out on borrow yet is refused past that many others out on
        borrow at once, in the same atomic step (BorrowLimitReached).
        Raises SessionNotFound."""

    def borrow_undo(self, *, borrowed: Lease, borrow_id: str, reason: str) -> Lease | None:
        """Put a lease back as it was before the borrow `borrow_id` (the id of
        the event handed to `borrow`), if that borrow is still the last change
        to it: a borrow answered 503 has not happened. Returns the lease as
        put back; None when it has changed since (released, ended, borrowed
        again by another request), which is then left alone. Only a ledger
        whose changes outlive a rolled-back request transaction
        (records_events) has it; it records `lease.borrow_undone` itself. On
        the others the request's transaction holds the borrow and undoes it."""
        raise NotImplementedError(f"the {self.name} ledger's borrows roll back with their transaction")

    @abstractmethod
    def live_leases(self, *, license_id: uuid.UUID) -> list[Lease]:
        """Live leases, oldest first."""

    @abstractmethod
    def live_leases_page(
        self, *, license_id: uuid.UUID, cursor: str | None, limit: int, user_id: str | None = None
    ) -> tuple[list[Lease], str | None]:
        """One page of live leases, oldest first (by creation, then session
        id: an order a heartbeat does not move), only `user_id`'s when named:
        at most `limit` leases after `cursor` (None: from the start), and the
        cursor of the next page (None after the last). Costs O(limit) plus a
        log of the lease count, never O(every lease). A lease acquired while
        a client pages shows on a later page; each lease live throughout
        shows exactly once. The cursor is the backend's own; raises
        LeaseCursorInvalid for one it did not hand out."""

    @abstractmethod
    def used(self, *, license_id: uuid.UUID, per_user: bool = False) -> int:
        """How many seats are in use: live leases, or (`per_user`) users
        holding one (a lease without a user counts as one user)."""

    @abstractmethod
    def queued(self, *, license_id: uuid.UUID) -> int:
        """How many queue tickets wait (none past its deadline)."""

    @abstractmethod
    def tickets_drop(
        self, *, license_id: uuid.UUID, user_id: str | None = None, fingerprint: str | None = None
    ) -> int:
        """Take the queue tickets of a user (on any machine), of a machine (of
        any user), or of one holder (both) out of the queue; how many went."""

    @abstractmethod
    def expired_pending(self, *, license_id: uuid.UUID, limit: int = 500) -> list[ExpiredLease]:
        """Leases that ended by expiry and are not yet acknowledged, pruning
        any expired lease still counted as live first."""

    @abstractmethod
    def expired_ack(self, *, license_id: uuid.UUID, session_ids: list[str]) -> None:
        """Forget expired leases the sweep has recorded."""

    def events_pending(self, *, license_id: uuid.UUID, limit: int = 500) -> list[PendingEvent]:
        """Events kept with their changes and not yet acknowledged, oldest first
        (none for a ledger that does not record events)."""
        return []

    def events_ack(self, *, license_id: uuid.UUID, stream_ids: list[str]) -> None:
        """Forget events the drainer has committed to the audit log."""
        return None
