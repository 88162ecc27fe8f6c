"""The database seat ledger: the embedded default and Redis-less installs.

Leases are rows of `license_leases` (licenses.models.Lease), RLS-protected and
read through the tenant-scoped manager, so every method runs in the caller's
tenant scope (or in operator scope, on the operator alias); `call_scope()`
opens the tenant's scope for a caller that holds neither.

Correctness rests on one lock and one clock:
- Acquire holds the license row FOR UPDATE; heartbeat, borrow and release
  hold it FOR KEY SHARE, so nothing that extends or ends a lease interleaves
  with an acquire counting seats. On SQLite every transaction is
  IMMEDIATE (see settings), which serialises them all.
- "Now" is read from the database (PostgreSQL `clock_timestamp()`, after the
  lock is held; SQLite `'now'`), never from the app server: a lease is live
  while `expires_at` is ahead of it.
Each method that writes runs in `transaction.atomic()`, joining the caller's
transaction when there is one; reads need no more than one statement.
"""

from __future__ import annotations

import functools
import uuid
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.models import Count, Min, Q, Value
from django.db.models.functions import Coalesce

from licenses.ledger.base import (
    AcquireResult,
    BorrowLimitReached,
    ExpiredLease,
    GroupLimitReached,
    Lease,
    LeaseCursorInvalid,
    LedgerError,
    LedgerEvent,
    LedgerUnavailable,
    NoSeatsAvailable,
    QueueFull,
    QueueRequest,
    QueueTicket,
    SeatGroup,
    SeatLedger,
    SessionNotFound,
    TicketNotFound,
    UserMachineLimitReached,
    lease_from_row,
    new_session_id,
)
from licenses.models import Lease as LeaseRow
from licenses.models import LeaseTicket, License
from tenants.scope import ScopeError, current_tenant_id, in_operator_scope, tenant_scope


def _unavailable_on_database_errors(method):
    """A database that does not answer (or is locked past its timeout) is the
    ledger being unavailable, which the API answers with 503."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            raise LedgerUnavailable(f"the database does not answer: {exc}") from exc

    return wrapper


def _page_position(cursor: str) -> tuple[datetime, str]:
    """A live_leases_page cursor: '<created_at, ISO 8601>|<session id>'."""
    created, _, session_id = cursor.partition("|")
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError:
        raise LeaseCursorInvalid(cursor) from None
    if created_at.tzinfo is None or not session_id:
        raise LeaseCursorInvalid(cursor)
    try:
        # In UTC, as stored: a time at the edge of the calendar with an
        # offset has no UTC (SQLite's adapter would fail on it, a 500).
        created_at = created_at.astimezone(UTC)
    except OverflowError:
        raise LeaseCursorInvalid(cursor) from None
    return created_at, session_id


class _GroupRules:
    """What the group rules leave free for a holder, counted under the license
    row's lock: a group's unused reservation is free only to its members, and
    a group at its max takes no more (the same sums as acquire.lua)."""

    def __init__(self, live, groups: tuple[SeatGroup, ...], per_user: bool, *, capacity: int, used: int):
        self.rule_of = {rule.name: rule for rule in groups}
        self.used_of: dict[str, int] = {}
        if groups:
            # Per user, a group's seats are the users holding its leases (a
            # lease without a user is one user).
            holders = Coalesce("user_id", Value(""))
            counts = live.aggregate(
                **{
                    f"g{i}": Count(holders, distinct=True, filter=Q(seat_group=rule.name))
                    if per_user
                    else Count("pk", filter=Q(seat_group=rule.name))
                    for i, rule in enumerate(groups)
                }
            )
            self.used_of = {rule.name: counts[f"g{i}"] for i, rule in enumerate(groups)}
        self.unused_of = {
            name: max(0, rule.reserve - self.used_of[name]) for name, rule in self.rule_of.items()
        }
        self.unused = sum(self.unused_of.values())
        self.capacity, self.used = capacity, used

    def full(self, group: str | None) -> bool:
        rule = self.rule_of.get(group) if group else None
        return rule is not None and rule.max is not None and self.used_of[group] >= rule.max

    def free_for(self, group: str | None) -> int:
        # A group's own reservation is its members' whatever the others
        # reserve (reservations past the seats lock no one out of their own).
        own = self.unused_of.get(group, 0) if group else 0
        free = self.capacity - self.used
        return max(free - (self.unused - own), min(own, free))

    def priority_of(self, group: str | None) -> int:
        rule = self.rule_of.get(group) if group else None
        return rule.priority if rule is not None else 0


class DatabaseSeatLedger(SeatLedger):
    name = "database"

    def __init__(self, *, sweep_claim_seconds: int = 300) -> None:
        # An expired lease handed to a sweeper that never acknowledges it comes
        # back to the next sweeper after this long.
        self.sweep_claim_seconds = sweep_claim_seconds

    # --- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _using() -> str:
        # The router sends operator-scope work to the operator alias.
        return router.db_for_write(LeaseRow)

    @staticmethod
    def _require_scope() -> None:
        # Outside any scope the scoped manager (and RLS) see no rows at all, so
        # every call would quietly find nothing; say so instead.
        if current_tenant_id() is None and not in_operator_scope():
            raise ScopeError("the database seat ledger runs in a tenant scope (or operator scope)")

    @staticmethod
    def _atomic(using: str):
        # Inside the caller's transaction no savepoint of our own: the outcome
        # (a refusal, an unknown session) is raised after the block, so the
        # caller's transaction stays usable, e.g. to audit the refusal.
        return transaction.atomic(using=using, savepoint=False)

    @staticmethod
    def _clock(using: str) -> datetime:
        connection = connections[using]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Not now(): that is the transaction's start, which may be long
                # before the lock was granted.
                cursor.execute("SELECT clock_timestamp()")
                return cursor.fetchone()[0].astimezone(UTC)
            if connection.vendor == "sqlite":
                cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
                return datetime.fromisoformat(cursor.fetchone()[0]).replace(tzinfo=UTC)
        raise NotImplementedError(f"no database clock for {connection.vendor}")

    @staticmethod
    def _lock_license(using: str, license_id: uuid.UUID, *, tenant_id: uuid.UUID) -> int:
        """FOR UPDATE on the license row (acquire): excludes every
        other writer of this license's leases until commit. Returns max_seats
        as of the lock."""
        rows = list(
            License.objects.using(using)
            .select_for_update()
            .filter(pk=license_id)
            .values_list("tenant_id", "max_seats")
        )
        if not rows:
            raise LedgerError(f"license {license_id} is not visible in the current scope")
        owner, max_seats = rows[0]
        if owner != tenant_id:
            raise LedgerError(f"license {license_id} does not belong to tenant {tenant_id}")
        return max_seats

    @staticmethod
    def _share_license(using: str, license_id: uuid.UUID) -> None:
        """FOR KEY SHARE on the license row (heartbeat, borrow, release): these
        run side by side, but never while an acquire is counting seats."""
        connection = connections[using]
        if connection.vendor != "postgresql":
            return  # SQLite: the IMMEDIATE transaction already excludes everyone
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM licenses WHERE id = %s FOR KEY SHARE", [license_id])

    @staticmethod
    def _live(using: str, license_id: uuid.UUID, now: datetime):
        return LeaseRow.objects.using(using).filter(license_id=license_id, expires_at__gt=now)

    def _live_row(self, using: str, license_id: uuid.UUID, session_id: str, now: datetime) -> LeaseRow | None:
        return self._live(using, license_id, now).select_for_update().filter(session_id=session_id).first()

    @staticmethod
    def _in_use(row: LeaseRow | None) -> LeaseRow | None:
        """The row, unless its holder released it and it only lingers."""
        return row if row is not None and row.lingering_since is None else None

    # --- the interface --------------------------------------------------------------------

    def call_scope(self, tenant_id: uuid.UUID) -> AbstractContextManager:
        # A caller already in this tenant's transaction (a request, a service
        # that audits in the same transaction) or in operator scope (which sees
        # every tenant) is joined as it is: no second transaction, no savepoint.
        if in_operator_scope():
            return nullcontext()
        if (
            current_tenant_id() == uuid.UUID(str(tenant_id))
            and transaction.get_connection(self._using()).in_atomic_block
        ):
            return nullcontext()
        return tenant_scope(tenant_id)

    @_unavailable_on_database_errors
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
        self._require_scope()
        using = self._using()
        with self._atomic(using):
            # The caller read max_seats before this lock: a limit lowered since
            # then counts too (the stricter of the two; never oversell).
            max_seats = min(max_seats, self._lock_license(using, license_id, tenant_id=tenant_id))
            now = self._clock(using)
            live = self._live(using, license_id, now)
            # One user on one machine holds one lease; another user of the
            # machine holds their own (invariant 10).
            user = Q(user_id__isnull=True) if user_id is None else Q(user_id=user_id)
            holder = Q(fingerprint=fingerprint) & user
            tickets = LeaseTicket.objects.using(using).filter(license_id=license_id)
            seats = live.aggregate(
                used=Count("pk"), held=Min("session_id", filter=holder), theirs=Count("pk", filter=user)
            )
            used, theirs, reclaimed = seats["used"], seats["theirs"], False
            # The holder's ticket, if one waits (those past their deadline go).
            # A license that never queued has no row to look at past the first.
            ticket = None
            if queued := tickets.exists():
                tickets.filter(expires_at__lte=now).delete()
                ticket = tickets.filter(holder).first()
            refusal: LedgerError | None = None
            if queue is not None and queue.ticket_id is not None:
                if ticket is None or ticket.ticket_id != queue.ticket_id:
                    # Refused before anything else changes (a lingering seat stays).
                    refusal = TicketNotFound(queue.ticket_id)
            if seats["held"] is not None:
                held = live.get(session_id=seats["held"])
                if held.lingering_since is None:
                    expires_at = max(held.expires_at, now + timedelta(seconds=ttl))
                    if expires_at != held.expires_at:
                        LeaseRow.objects.using(using).filter(pk=held.pk).update(expires_at=expires_at)
                        held.expires_at = expires_at
                    if per_user:
                        used = self._users_holding(live)
                    if ticket is not None:
                        LeaseTicket.objects.using(using).filter(pk=ticket.pk).delete()
                    return AcquireResult(lease=lease_from_row(held), created=False, used=used)
                if refusal is None:
                    # Released by this holder within the linger: its seat goes to
                    # the holder's new lease, whatever the count (it is one seat
                    # already held); the new lease's audit row says so.
                    LeaseRow.objects.using(using).filter(pk=held.pk).delete()
                    used, theirs, reclaimed = used - 1, theirs - 1, True
            # Per user, the seats are the users holding one; a user who holds
            # one already takes no other on another machine.
            shares_a_seat = per_user and theirs > 0
            if per_user:
                used = self._users_holding(live)
                # (A reclaimed seat is the one this machine held: never refused.)
                at_limit = machines_per_user is not None and theirs >= machines_per_user
                if shares_a_seat and at_limit and not reclaimed and refusal is None:
                    refusal = UserMachineLimitReached(limit=machines_per_user, held=theirs)
            grant = refusal is None and (reclaimed or shares_a_seat)
            if refusal is None and not grant:
                rules = _GroupRules(live, groups, per_user, capacity=max_seats + overdraft, used=used)
                free = rules.free_for(group)
                refusal = NoSeatsAvailable(used=used, max_seats=max_seats)
                if rules.full(group):
                    rule = rules.rule_of[group]
                    refusal, free = (
                        GroupLimitReached(group=group, limit=rule.max, held=rules.used_of[group]),
                        0,
                    )
                grant = free > (self._tickets_ahead(tickets, ticket, rules, free) if queued else 0)
                if not grant and isinstance(refusal, NoSeatsAvailable) and max_seats + overdraft - used > 0:
                    # Seats are free, but not for this holder: why.
                    refusal = NoSeatsAvailable(
                        used=used, max_seats=max_seats, held_for="reserved" if free <= 0 else "queue"
                    )
                if not grant and queue is not None:
                    if ticket is None:
                        waiting = tickets.count()
                        if waiting >= queue.max_tickets:
                            refusal = QueueFull(waiting=waiting, max_tickets=queue.max_tickets)
                        else:
                            ticket = LeaseTicket(
                                tenant_id=tenant_id,
                                license_id=license_id,
                                ticket_id=new_session_id(),
                                fingerprint=fingerprint,
                                user_id=user_id,
                                seat_group=group or "",
                                priority=rules.priority_of(group),
                                created_at=now,
                                expires_at=now + timedelta(seconds=queue.ttl),
                            )
                            ticket.save(force_insert=True, using=using)
                            return self._queued(tickets, ticket, created=True)
                    if not isinstance(refusal, QueueFull):
                        ticket.expires_at = now + timedelta(seconds=queue.ttl)
                        LeaseTicket.objects.using(using).filter(pk=ticket.pk).update(
                            expires_at=ticket.expires_at
                        )
                        return self._queued(tickets, ticket, created=False)
            if grant:
                row = LeaseRow(
                    tenant_id=tenant_id,
                    license_id=license_id,
                    session_id=new_session_id(),
                    fingerprint=fingerprint,
                    user_id=user_id,
                    client_info=client_info or {},
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                    overdraft=used >= max_seats and not shares_a_seat,
                    # A lease sharing its user's seat counts in no group: the
                    # seat counts under the group its first lease was granted in.
                    seat_group="" if shares_a_seat else group or "",
                )
                row.save(force_insert=True, using=using)
                waited_for = None
                if ticket is not None:
                    LeaseTicket.objects.using(using).filter(pk=ticket.pk).delete()
                    waited_for = ticket
                return AcquireResult(
                    lease=lease_from_row(row),
                    created=True,
                    used=used if shares_a_seat else used + 1,
                    reclaimed=reclaimed,
                    ticket_id=waited_for.ticket_id if waited_for else None,
                    waited=now - waited_for.created_at if waited_for else None,
                )
        # Raised after the block: the caller's transaction stays usable.
        raise refusal

    @staticmethod
    def _ahead_of(tickets, ticket: LeaseTicket | None):
        """The tickets before `ticket` in the queue's order (all, for None)."""
        if ticket is None:
            return tickets
        return tickets.filter(Q(priority__gt=ticket.priority) | Q(priority=ticket.priority, pk__lt=ticket.pk))

    def _tickets_ahead(self, tickets, ticket: LeaseTicket | None, rules: _GroupRules, free: int) -> int:
        """The tickets ahead of the holder's that could take a seat now, counted
        up to `free` (no more are needed to refuse)."""
        if free <= 0:
            return 0
        ahead = self._ahead_of(tickets, ticket)
        if not rules.rule_of:
            # With no group rules, every ticket could take a free seat.
            return ahead.count()
        count = 0
        for other in ahead.order_by("-priority", "pk").values_list("seat_group", flat=True).iterator():
            other = other or None
            if not rules.full(other) and rules.free_for(other) > 0:
                count += 1
                if count >= free:
                    break
        return count

    def _queued(self, tickets, ticket: LeaseTicket, *, created: bool) -> QueueTicket:
        return QueueTicket(
            ticket_id=ticket.ticket_id,
            position=self._ahead_of(tickets, ticket).count() + 1,
            waiting=tickets.count(),
            created_at=ticket.created_at,
            expires_at=ticket.expires_at,
            created=created,
        )

    @staticmethod
    def _users_holding(live) -> int:
        """The users holding a live lease (a lease without a user is one)."""
        return live.order_by().values("user_id").distinct().count()

    @contextmanager
    def _live_session(self, license_id: uuid.UUID, session_id: str, *, exclusive: bool = False):
        """What heartbeat, release and borrow share: the caller's scope, one
        transaction, the shared lock on the license row (`exclusive`: FOR
        UPDATE, for a step that counts leases, as acquire does), the
        database's clock, and the session's live row (None when it is not live)."""
        self._require_scope()
        using = self._using()
        with self._atomic(using):
            if exclusive:
                License.objects.using(using).select_for_update().filter(pk=license_id).exists()
            else:
                self._share_license(using, license_id)
            now = self._clock(using)
            yield using, now, self._live_row(using, license_id, session_id, now)

    @_unavailable_on_database_errors
    def heartbeat(
        self, *, license_id: uuid.UUID, session_id: str, ttl: int, rejection: LedgerEvent | None = None
    ) -> Lease:
        with self._live_session(license_id, session_id) as (using, now, row):
            if (row := self._in_use(row)) is not None:
                expires_at = max(row.expires_at, now + timedelta(seconds=ttl))
                if expires_at != row.expires_at:
                    LeaseRow.objects.using(using).filter(pk=row.pk).update(expires_at=expires_at)
                    row.expires_at = expires_at
                return lease_from_row(row)
        raise SessionNotFound(session_id)

    @_unavailable_on_database_errors
    def release(
        self, *, license_id: uuid.UUID, session_id: str, event: LedgerEvent | None = None, linger: int = 0
    ) -> Lease:
        # The caller records `event` in this same transaction (records_events is False).
        with self._live_session(license_id, session_id) as (using, now, row):
            if row is not None and linger > 0:
                if row.lingering_since is None:
                    # Held for its holder, no longer borrowed: a returned borrow ends.
                    row.lingering_since, row.borrowed_until = now, None
                    row.expires_at = now + timedelta(seconds=linger)
                    LeaseRow.objects.using(using).filter(pk=row.pk).update(
                        lingering_since=now, borrowed_until=None, expires_at=row.expires_at
                    )
                    return lease_from_row(row)
            elif row is not None:
                LeaseRow.objects.using(using).filter(pk=row.pk).delete()
                return lease_from_row(row, expires_at=now)
        raise SessionNotFound(session_id)

    @_unavailable_on_database_errors
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
        limited = max_borrowed is not None or max_per_user is not None
        refusal = None
        with self._live_session(license_id, session_id, exclusive=limited) as (using, now, row):
            row = self._in_use(row)
            if row is not None and limited and (row.borrowed_until is None or row.borrowed_until <= now):
                refusal = self._borrow_limits_refusal(using, row, now, max_borrowed, max_per_user)
            if row is not None and refusal is None:
                row.borrowed_until = now + timedelta(seconds=seconds)
                if not_after is not None:
                    row.borrowed_until = min(row.borrowed_until, not_after)
                row.expires_at = max(row.expires_at, row.borrowed_until)
                LeaseRow.objects.using(using).filter(pk=row.pk).update(
                    expires_at=row.expires_at, borrowed_until=row.borrowed_until
                )
                return lease_from_row(row)
        if refusal is not None:
            # Raised after the block: the caller's transaction stays usable.
            raise refusal
        raise SessionNotFound(session_id)

    def _borrow_limits_refusal(
        self, using: str, row: LeaseRow, now: datetime, max_borrowed: int | None, max_per_user: int | None
    ) -> BorrowLimitReached | None:
        """Under the license row's FOR UPDATE: the other live leases out on
        borrow now, against the license's limit and the holder's."""
        out = self._live(using, row.license_id, now).filter(borrowed_until__gt=now).exclude(pk=row.pk)
        if max_borrowed is not None and (count := out.count()) >= max_borrowed:
            return BorrowLimitReached("license", max_borrowed, count)
        if max_per_user is not None:
            mine = (
                out.filter(user_id__isnull=True) if row.user_id is None else out.filter(user_id=row.user_id)
            )
            if (count := mine.count()) >= max_per_user:
                return BorrowLimitReached("user", max_per_user, count)
        return None

    @_unavailable_on_database_errors
    def live_leases(self, *, license_id: uuid.UUID) -> list[Lease]:
        self._require_scope()
        using = self._using()
        rows = list(self._live(using, license_id, self._clock(using)).order_by("created_at", "session_id"))
        return [lease_from_row(row) for row in rows]

    @_unavailable_on_database_errors
    def live_leases_page(
        self, *, license_id: uuid.UUID, cursor: str | None, limit: int, user_id: str | None = None
    ) -> tuple[list[Lease], str | None]:
        # A keyset page on the (license, [user,] created_at, session_id)
        # indexes: the scan starts at the cursor and stops after limit + 1
        # rows (plus any expired row not yet swept between them).
        self._require_scope()
        using = self._using()
        rows = self._live(using, license_id, self._clock(using))
        if user_id is not None:
            rows = rows.filter(user_id=user_id)
        if cursor is not None:
            created_at, session_id = _page_position(cursor)
            rows = rows.filter(created_at__gte=created_at).filter(
                Q(created_at__gt=created_at) | Q(session_id__gt=session_id)
            )
        page = list(rows.order_by("created_at", "session_id")[: limit + 1])
        if len(page) <= limit:
            return [lease_from_row(row) for row in page], None
        last = page[limit - 1]
        return [
            lease_from_row(row) for row in page[:limit]
        ], f"{last.created_at.isoformat()}|{last.session_id}"

    @_unavailable_on_database_errors
    def used(self, *, license_id: uuid.UUID, per_user: bool = False) -> int:
        self._require_scope()
        using = self._using()
        live = self._live(using, license_id, self._clock(using))
        return self._users_holding(live) if per_user else live.count()

    @_unavailable_on_database_errors
    def queued(self, *, license_id: uuid.UUID) -> int:
        self._require_scope()
        using = self._using()
        now = self._clock(using)
        return LeaseTicket.objects.using(using).filter(license_id=license_id, expires_at__gt=now).count()

    @_unavailable_on_database_errors
    def tickets_drop(
        self, *, license_id: uuid.UUID, user_id: str | None = None, fingerprint: str | None = None
    ) -> int:
        if user_id is None and fingerprint is None:
            raise ValueError("name the user or the machine whose tickets go")
        self._require_scope()
        using = self._using()
        tickets = LeaseTicket.objects.using(using).filter(license_id=license_id)
        if user_id is not None:
            tickets = tickets.filter(user_id=user_id)
        if fingerprint is not None:
            tickets = tickets.filter(fingerprint=fingerprint)
        with self._atomic(using):
            return tickets.delete()[0]

    @_unavailable_on_database_errors
    def expired_pending(self, *, license_id: uuid.UUID, limit: int = 500) -> list[ExpiredLease]:
        self._require_scope()
        using = self._using()
        with self._atomic(using):
            now = self._clock(using)
            due = (
                LeaseRow.objects.using(using)
                .filter(license_id=license_id, expires_at__lte=now)
                .filter(Q(sweep_claimed_until__isnull=True) | Q(sweep_claimed_until__lte=now))
                .order_by("expires_at", "session_id")
            )
            # SKIP LOCKED: a sweeper racing this one passes over these rows, and
            # once this commits they carry a claim it will not match.
            rows = list(due.select_for_update(skip_locked=True)[:limit])
            LeaseRow.objects.using(using).filter(pk__in=[row.pk for row in rows]).update(
                sweep_claimed_until=now + timedelta(seconds=self.sweep_claim_seconds)
            )
        return [ExpiredLease(lease=lease_from_row(row), expired_at=row.expires_at) for row in rows]

    @_unavailable_on_database_errors
    def expired_ack(self, *, license_id: uuid.UUID, session_ids: list[str]) -> None:
        if not session_ids:
            return
        self._require_scope()
        using = self._using()
        with self._atomic(using):
            now = self._clock(using)
            # Only expired rows: an acknowledgement never ends a live lease.
            LeaseRow.objects.using(using).filter(
                license_id=license_id, session_id__in=session_ids, expires_at__lte=now
            ).delete()
